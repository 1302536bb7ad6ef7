"""The authentication layer inside the full stack: built from LAYERS, identity visible to a
Starlette app, the real brute-force guard from the rate-limit layer, storage backends."""

from __future__ import annotations

import base64

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.auth.conftest import FAST
from tframex_asgi import build_stack
from tframex_asgi.auth.store import get_identity_store


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "user": request.user.display_name,
            "scopes": request.auth.scopes,
            "principal": request.scope["tframex"]["principal"].id,
        }
    )


def settings(url: str) -> dict:
    return {
        "enable_persistence": True,
        "persistence_config": {"connection_string": url},
        "enable_security": True,
        "security_config": {
            "auth_providers": {"api_key": True, "basic": {"enabled": True, **FAST}},
            "rbac": {"enabled": False},
            "rate_limiting": {"enabled": True, "default": "1000/minute", "auth_failures": "3/minute"},
            "audit": "off",
        },
    }


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def backend_url(request, tmp_path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/stack.db"
    return request.getfixturevalue("pg_schema_dsn")


async def test_stack_authenticates_and_blocks_brute_force(backend_url) -> None:
    app = Starlette(routes=[Route("/me", whoami), Route("/healthz", lambda r: JSONResponse({"ok": True}))])
    stack = build_stack(app, **settings(backend_url))
    assert "authentication" in stack.layers
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as client:
        store = get_identity_store(stack.services)
        user = await store.create_user("carol", password="pw")
        _, key = await store.create_api_key(user["id"])
        assert (await client.get("/healthz")).status_code == 200
        me = await client.get("/me", headers={"X-API-Key": key})
        assert me.status_code == 200 and me.json()["user"] == "carol" and me.json()["principal"] == user["id"]
        assert "agent.execute" in me.json()["scopes"]
        basic = "Basic " + base64.b64encode(b"carol:pw").decode()
        assert (await client.get("/me", headers={"Authorization": basic})).status_code == 200
        bad = "Basic " + base64.b64encode(b"carol:guess").decode()
        statuses = [(await client.get("/me", headers={"Authorization": bad})).status_code for _ in range(5)]
        assert statuses[:3] == [401, 401, 401] and statuses[-1] == 429
        blocked = await client.get("/me", headers={"Authorization": basic})
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        await store.drain()
