"""The RBAC tables through every SQL backend: composite keys, unique names, cascades."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tframex_asgi.clock import ManualClock
from tframex_asgi.config.persistence import PersistenceConfig
from tframex_asgi.rbac.engine import RBACEngine
from tframex_asgi.rbac.permissions import DEFAULT_ROLES, PERMISSIONS
from tframex_asgi.storage import BaseStorage, open_storage


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/rbac.db"
    pytest.importorskip("asyncpg")
    return str(request.getfixturevalue("pg_schema_dsn"))


@pytest.fixture
async def backend(backend_url: str) -> AsyncIterator[BaseStorage]:
    config = PersistenceConfig(enabled=True, connection_string=backend_url, migrations=True)
    store = open_storage(backend_url, config)
    await store.connect()
    yield store
    await store.close()


async def test_engine_on_a_real_database(backend: BaseStorage) -> None:
    clock = ManualClock()
    rbac = RBACEngine(backend, clock)
    await rbac.start()
    await RBACEngine(backend, clock).start()  # a second process seeding the same tables
    assert await backend.count("roles") == len(DEFAULT_ROLES)
    assert rbac.permissions_for_roles(["admin"]) == frozenset(PERMISSIONS)
    uid = await backend.write("users", {"username": "zed"})
    assert await rbac.grant(uid, "developer") is True
    assert await rbac.grant(uid, "developer") is False
    await rbac.create_role("lead", ["data.delete"], inherits=["developer"])
    assert await rbac.grant(uid, "lead") is True
    assert await rbac.roles_for_user(uid) == {"user", "developer", "lead"}
    assert "data.delete" in rbac.permissions_for_roles(await rbac.roles_for_user(uid))
    assert await rbac.revoke(uid, "developer") is True
    assert await rbac.delete_role("lead") is True
    assert await rbac.roles_for_user(uid) == {"user"}
    assert await backend.count("user_roles") == 0
