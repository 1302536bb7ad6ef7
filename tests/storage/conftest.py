"""Storage fixtures parametrised over every backend the contract applies to.

``storage``: memory, SQLite, PostgreSQL and S3 (moto). ``relational``: the backends that enforce
UNIQUE and foreign keys (S3 is an archive and does not).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tframex_asgi.storage import BaseStorage, open_storage

RELATIONAL = ["memory", "sqlite", "postgresql"]


def _url(kind: str, request: pytest.FixtureRequest, tmp_path) -> str:
    # Sync on purpose: pg_schema_dsn creates its schema with asyncio.run().
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/contract.db"
    if kind == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        return f"s3://tframex-{uuid.uuid4().hex[:12]}/archive?endpoint_url={endpoint}"
    return request.getfixturevalue("pg_schema_dsn")


@pytest.fixture(params=[*RELATIONAL, "s3"])
def storage_url(request: pytest.FixtureRequest, tmp_path) -> str:
    return _url(request.param, request, tmp_path)


@pytest.fixture(params=RELATIONAL)
def relational_url(request: pytest.FixtureRequest, tmp_path) -> str:
    return _url(request.param, request, tmp_path)


async def _open(url: str) -> AsyncIterator[BaseStorage]:
    store = open_storage(url)
    await store.connect()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[BaseStorage]:
    async for store in _open(storage_url):
        yield store


@pytest.fixture
async def relational(relational_url: str) -> AsyncIterator[BaseStorage]:
    async for store in _open(relational_url):
        yield store
