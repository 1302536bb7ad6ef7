"""The seed's component names are importable where a reader of the seed looks, and work."""

from __future__ import annotations

import uuid

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from tframex_asgi.auth import Principal, get_identity_store
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint
from tframex_asgi.errors import AuthenticationError, AuthorizationError, NotFoundError
from tframex_asgi.storage import open_storage


def test_every_seed_name_imports_where_the_seed_shows_it() -> None:
    import tframex_asgi
    from tframex_asgi import MetricsMiddleware, PersistenceMiddleware, SecurityMiddleware, middleware
    from tframex_asgi.metrics import MetricsMiddleware as FromMetrics
    from tframex_asgi.rbac import CallerGuard, PermissionManager, RBACEngine, ResourceGuard
    from tframex_asgi.storage import InMemoryStorage, PostgreSQLStorage, S3Storage, SQLiteStorage
    from tframex_asgi.storage.memory import MemoryStorage
    from tframex_asgi.storage.postgres import PostgresStorage

    assert InMemoryStorage is MemoryStorage and PostgreSQLStorage is PostgresStorage
    assert PermissionManager is RBACEngine
    assert FromMetrics is MetricsMiddleware is middleware.MetricsMiddleware
    assert {"MetricsMiddleware", "PersistenceMiddleware", "SecurityMiddleware"} <= set(tframex_asgi.__all__)
    assert PersistenceMiddleware.feature == "persistence" and SecurityMiddleware.feature == "security"
    assert SQLiteStorage.__name__ == "SQLiteStorage" and S3Storage.__name__ == "S3Storage"
    assert ResourceGuard.__module__ == "tframex_asgi.rbac.resources"  # the seed's resource-level guard
    assert CallerGuard.__module__ == "tframex_asgi.rbac.resource"


async def test_in_memory_storage_is_the_memory_backend() -> None:
    from tframex_asgi.storage import InMemoryStorage

    async with InMemoryStorage() as db:
        rid = await db.write("roles", {"id": str(uuid.uuid4()), "name": "seed"})
        assert [r["id"] for r in await db.read("roles", {"name": "seed"})] == [rid]


async def test_postgresql_storage_by_the_seed_name(pg_schema_dsn: str) -> None:
    from tframex_asgi.storage import PostgreSQLStorage

    db = PostgreSQLStorage(pg_schema_dsn)
    await db.connect()
    try:
        rid = await db.write("roles", {"id": str(uuid.uuid4()), "name": "seed"})
        assert await db.update("roles", rid, {"description": "by its seed name"})
        assert (await db.read("roles", {"id": rid}))[0]["description"] == "by its seed name"
        assert await db.delete("roles", rid)
    finally:
        await db.close()


async def test_permission_manager_resolves_the_default_roles() -> None:
    from tframex_asgi.rbac import PermissionManager

    async with open_storage("memory://") as db:
        pm = PermissionManager(db)
        await pm.start()
        assert pm.permissions_for_roles(["user"]) >= {"agent.execute", "tool.call", "data.write"}
        assert "audit.view" not in pm.permissions_for_roles(["user"])


def test_caller_guard_for_a_principal() -> None:
    from tframex_asgi.rbac import CallerGuard

    me = Principal("u1", "alice", frozenset({"user"}), frozenset({"agent.execute", "data.read"}), "api_key")
    guard = CallerGuard.for_principal(me)
    assert guard.allowed("agent.execute") and not guard.allowed("flow.execute")
    guard.require("agent.execute")
    with pytest.raises(AuthorizationError, match="flow.execute to run flow 'x'"):
        guard.require("flow.execute", what="run flow 'x'")
    assert guard.owns("u1") and not guard.owns("u2")
    with pytest.raises(NotFoundError):
        guard.require_owner("u2", "conversation")
    assert guard.filter_owned([{"user_id": "u1"}, {"user_id": "u2"}]) == [{"user_id": "u1"}]
    with pytest.raises(AuthenticationError):
        CallerGuard.for_principal(None).require("agent.execute")


async def test_the_three_add_middleware_calls_build_one_stack(tmp_sqlite_url: str) -> None:
    """The seed's three ``app.add_middleware`` lines on a Starlette app: one stack, one storage."""
    from tframex_asgi import MetricsMiddleware, PersistenceMiddleware, SecurityMiddleware

    app = Starlette(routes=[Mount("/", TFrameXEndpoint(build_demo_app()))])
    app.add_middleware(MetricsMiddleware, backends=["prometheus"])
    app.add_middleware(PersistenceMiddleware, connection_string=tmp_sqlite_url)
    app.add_middleware(SecurityMiddleware, auth_providers=["api_key"])
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/agents")).status_code == 401  # security on: starts the stack lazily
        stack = app.middleware_stack.app  # inside Starlette's ServerErrorMiddleware
        assert isinstance(stack, SecurityMiddleware)
        assert {"metrics", "audit", "authentication", "authorization"} <= set(stack.layers)
        assert stack.config.persistence.url == tmp_sqlite_url and stack.config.metrics.enabled
        store = get_identity_store(stack.services)
        user = await store.create_user("seed-user")
        await stack.services.rbac.grant(user["id"], "user")
        await stack.services.rbac.grant(user["id"], "developer")
        _, key = await store.create_api_key(user["id"])
        run = await c.post("/agents/calculator/run", json={"input": "add 2 and 40"}, headers={"X-API-Key": key})
        assert run.status_code == 200, run.text
        metrics = await c.get("/metrics", headers={"X-API-Key": key})
        assert 'tframex_agent_executions_total{agent="calculator",status="success"} 1.0' in metrics.text
        await stack.shutdown()
    async with open_storage(tmp_sqlite_url) as db:
        rows = await db.read("agent_executions", {"conversation_id": run.json()["conversation_id"]})
        assert [(r["agent_name"], r["user_id"]) for r in rows] == [("calculator", user["id"])]


def test_a_feature_middleware_alone_enables_only_its_feature() -> None:
    from tframex_asgi import MetricsMiddleware

    stack = MetricsMiddleware(TFrameXEndpoint(build_demo_app()))
    assert not stack.config.security.enabled and not stack.config.persistence.enabled
    assert "metrics" in stack.layers and "authentication" not in stack.layers
