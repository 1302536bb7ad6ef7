"""Fixtures for the real services: a PostgreSQL database per test run, a Redis key prefix per
test run, and a moto S3 server on a random loopback port; ``relational``, a storage opened on each
backend that enforces UNIQUE and foreign keys (for any package whose rows go through storage).

Under CI (CI=true) a missing service fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tframex_asgi.storage import BaseStorage

PG_ADMIN_DSN = os.environ.get("TFRAMEX_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TFRAMEX_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
RUN_ID = uuid.uuid4().hex[:10]

# own_postgres and own_redis, for the tests that stop and restart a server of their own.
pytest_plugins = ["tests.own_services"]


def service_missing(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable: {exc!r}"
    if IN_CI:
        pytest.fail(message + " (CI=true: services are required)")
    pytest.skip(message)


def free_port() -> int:
    """A free TCP port on the loopback interface, for a server a test starts itself."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    asyncpg = pytest.importorskip("asyncpg")
    name = f"tframex_test_{RUN_ID}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        service_missing("PostgreSQL at " + PG_ADMIN_DSN, exc)
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_schema_dsn(pg_dsn: str) -> Iterator[str]:
    """A DSN whose search_path is a fresh schema (one per test), for isolation inside the run DB."""
    asyncpg = pytest.importorskip("asyncpg")
    schema = f"t_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(pg_dsn, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_dsn else "?"
    yield f"{pg_dsn}{sep}options=-csearch_path%3D{schema}"
    asyncio.run(run(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _port_open("127.0.0.1", 6379):
        service_missing("Redis at " + REDIS_URL, ConnectionRefusedError("127.0.0.1:6379"))
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; its keys are deleted afterwards."""
    redis = pytest.importorskip("redis")
    prefix = f"tframex-test-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a random loopback port (a thread of this process, stopped at the end)."""
    server_mod = pytest.importorskip("moto.server")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
async def tmp_sqlite_url(tmp_path: os.PathLike[str]) -> AsyncIterator[str]:
    yield f"sqlite:///{os.fspath(tmp_path)}/test.db"


# The backends that enforce UNIQUE and foreign keys (S3 is an archive and does not).
RELATIONAL = ["memory", "sqlite", "postgresql"]


def url_for_backend(kind: str, request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    # Sync on purpose: pg_schema_dsn creates its schema with asyncio.run().
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{os.fspath(tmp_path)}/contract.db"
    if kind == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        return f"s3://tframex-{uuid.uuid4().hex[:12]}/archive?endpoint_url={endpoint}"
    return str(request.getfixturevalue("pg_schema_dsn"))


async def connected(url: str) -> AsyncIterator[BaseStorage]:
    """A connected storage at ``url``, closed when the fixture using it ends."""
    from tframex_asgi.storage import open_storage

    store = open_storage(url)
    await store.connect()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=RELATIONAL)
def relational_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    return url_for_backend(request.param, request, tmp_path)


@pytest.fixture
async def relational(relational_url: str) -> AsyncIterator[BaseStorage]:
    async for store in connected(relational_url):
        yield store
