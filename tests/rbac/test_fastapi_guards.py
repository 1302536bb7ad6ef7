"""FastAPI: `Depends(RequirePermission(...))` is the one declaration a route needs (HTTP and
WebSocket, on the route or its router), and `/docs` / `/openapi.json` open through config."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, WebSocket
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tframex_asgi import build_stack
from tframex_asgi.admin.bootstrap import bootstrap_admin
from tframex_asgi.rbac import RequirePermission

SECURITY: dict[str, Any] = {"auth_providers": ["api_key"], "audit": "off"}


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/reports/{id}", dependencies=[Depends(RequirePermission("data.read"))])
    async def report(id: str) -> dict[str, str]:
        return {"report": id}

    @app.get("/either")
    async def either(user: Any = Depends(RequirePermission("metrics.view", "audit.view", any_of=True))) -> dict:
        return {"user": user.display_name}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, user: Any = Depends(RequirePermission("agent.execute"))) -> None:
        await websocket.accept()
        await websocket.send_text(f"hello {user.display_name}")
        await websocket.close()

    @app.get("/open")
    async def unguarded() -> dict[str, str]:
        return {"open": "no"}

    return app


def include_late(app: FastAPI) -> None:
    router = APIRouter(prefix="/late", dependencies=[Depends(RequirePermission("flow.view"))])

    @router.get("/thing")
    async def thing() -> dict[str, str]:
        return {"late": "yes"}

    app.include_router(router)


async def keys(stack: Any, http: httpx.AsyncClient) -> tuple[str, str]:
    created = await bootstrap_admin(stack.services)
    assert created is not None
    admin = {"X-API-Key": created[1]}
    made = await http.post("/admin/users", headers=admin, json={"username": "dev", "roles": ["developer"]})
    assert made.status_code == 201, made.text
    key = await http.post("/admin/api-keys", headers=admin, json={"user_id": made.json()["user"]["id"]})
    return created[1], key.json()["key"]


async def test_one_declaration_guards_http_routes() -> None:
    app = make_app()
    stack = build_stack(app, security_config=SECURITY)
    include_late(app)  # a router added after the stack was built is learned at startup
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as http:
        admin_key, dev_key = await keys(stack, http)
        admin, dev = {"X-API-Key": admin_key}, {"X-API-Key": dev_key}
        assert (await http.get("/reports/7")).status_code == 401
        ok = await http.get("/reports/7", headers=admin)
        assert ok.status_code == 200 and ok.json() == {"report": "7"}
        # developer: agent.view, metrics.view ... and data.read through the user role.
        assert (await http.get("/reports/7", headers=dev)).status_code == 200
        assert (await http.get("/either", headers=dev)).status_code == 200  # metrics.view is one of them
        assert (await http.get("/late/thing", headers=dev)).status_code == 200
        assert (await http.get("/late/thing")).status_code == 401
        # An unguarded, unmapped route stays deny by default.
        denied = await http.get("/open", headers=admin)
        assert denied.status_code == 403 and "no permission grants this route" in denied.text


async def test_guard_refuses_what_it_must() -> None:
    stack = build_stack(make_app(), security_config=SECURITY)
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as http:
        admin_key, _ = await keys(stack, http)
        admin = {"X-API-Key": admin_key}
        made = await http.post("/admin/users", headers=admin, json={"username": "u2", "roles": ["user"]})
        key = await http.post("/admin/api-keys", headers=admin, json={"user_id": made.json()["user"]["id"]})
        plain = {"X-API-Key": key.json()["key"]}
        assert (await http.get("/either", headers=plain)).status_code == 403  # neither permission
        assert (await http.get("/reports/1", headers=plain)).status_code == 200  # data.read via role user


def test_websocket_route_with_the_dependency() -> None:
    stack = build_stack(make_app(), security_config=SECURITY)
    with TestClient(stack) as client:
        created = client.portal.call(bootstrap_admin, stack.services)  # type: ignore[union-attr]
        assert created is not None
        with client.websocket_connect("/ws", headers={"X-API-Key": created[1]}) as ws:
            assert ws.receive_text() == "hello admin"
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws"):
            pass
        assert refused.value.code == 1008


async def test_websocket_guard_alone_closes_with_1008() -> None:
    """Without the authorization layer the dependency itself refuses (no TypeError, no 500)."""
    app = make_app()
    with TestClient(app) as client, pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws"):
        pass
    assert refused.value.code == 1008


async def test_docs_and_openapi_open_through_config() -> None:
    closed = build_stack(make_app(), security_config=SECURITY)
    async with closed, httpx.AsyncClient(transport=httpx.ASGITransport(closed), base_url="http://t") as http:
        assert (await http.get("/docs")).status_code == 401
    security = {**SECURITY, "public_paths": ["/healthz", "/readyz", "/docs", "/openapi.json"]}
    opened = build_stack(make_app(), security_config=security)
    async with opened, httpx.AsyncClient(transport=httpx.ASGITransport(opened), base_url="http://t") as http:
        assert (await http.get("/docs")).status_code == 200
        spec = await http.get("/openapi.json")
        assert spec.status_code == 200 and "/reports/{id}" in spec.json()["paths"]
    # Or behind a permission instead of public.
    behind = build_stack(
        make_app(),
        security_config={
            **SECURITY,
            "rbac": {"routes": {"GET /docs": "agent.view", "GET /openapi.json": "agent.view"}},
        },
    )
    async with behind, httpx.AsyncClient(transport=httpx.ASGITransport(behind), base_url="http://t") as http:
        created = await bootstrap_admin(behind.services)
        assert created is not None
        assert (await http.get("/openapi.json")).status_code == 401
        assert (await http.get("/openapi.json", headers={"X-API-Key": created[1]})).status_code == 200
