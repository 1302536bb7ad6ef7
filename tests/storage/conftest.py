"""Storage fixtures parametrised over every backend the contract applies to.

``storage``: memory, SQLite, PostgreSQL and S3 (moto). ``relational`` (the backends that enforce
UNIQUE and foreign keys) lives in tests/conftest.py, since tests of other packages use it too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import RELATIONAL, connected, url_for_backend
from tframex_asgi.storage import BaseStorage


@pytest.fixture(params=[*RELATIONAL, "s3"])
def storage_url(request: pytest.FixtureRequest, tmp_path) -> str:
    return url_for_backend(request.param, request, tmp_path)


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[BaseStorage]:
    async for store in connected(storage_url):
        yield store
