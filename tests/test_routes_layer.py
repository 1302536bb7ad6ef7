"""The stack's own routes (/metrics, /audit, /admin/*) around plain Starlette, FastAPI and Quart
apps, behind the same authentication and permissions as around the TFrameX endpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from quart import Quart
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tframex_asgi import build_stack
from tframex_asgi.admin.bootstrap import bootstrap_admin

CONFIG: dict[str, Any] = {
    "enable_metrics": True,
    "security_config": {"auth_providers": ["api_key"], "rbac": {"routes": {"GET /hello": "agent.view"}}},
}


def starlette_app() -> Any:
    async def hello(request: Any) -> JSONResponse:
        return JSONResponse({"hello": "starlette"})

    return Starlette(routes=[Route("/hello", hello)])


def fastapi_app() -> Any:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "fastapi"}

    return app


def quart_app() -> Any:
    app = Quart(__name__)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "quart"}

    return app


@pytest.mark.parametrize("make_app", [starlette_app, fastapi_app, quart_app], ids=["starlette", "fastapi", "quart"])
async def test_metrics_audit_and_admin_are_served_around_a_plain_app(make_app: Callable[[], Any]) -> None:
    stack = build_stack(make_app(), **CONFIG)
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as http:
        created = await bootstrap_admin(stack.services)
        assert created is not None
        admin = {"X-API-Key": created[1]}
        # Without credentials the stack's routes are closed, as every other route.
        for path in ("/metrics", "/audit", "/admin/users"):
            assert (await http.get(path)).status_code == 401, path
        made = await http.post("/admin/users", headers=admin, json={"username": "dev", "roles": ["developer"]})
        assert made.status_code == 201, made.text
        uid = made.json()["user"]["id"]
        key = (await http.post("/admin/api-keys", headers=admin, json={"user_id": uid})).json()["key"]
        dev = {"X-API-Key": key}
        made = await http.post("/admin/users", headers=admin, json={"username": "plain", "roles": ["user"]})
        key = (await http.post("/admin/api-keys", headers=admin, json={"user_id": made.json()["user"]["id"]})).json()
        plain = {"X-API-Key": key["key"]}
        hello = await http.get("/hello", headers=dev)
        assert hello.status_code == 200 and hello.json()["hello"] in ("starlette", "fastapi", "quart")

        metrics = await http.get("/metrics", headers=dev)  # developer holds metrics.view
        assert metrics.status_code == 200, metrics.text
        series = 'tframex_http_requests_total{method="GET",route="/hello",status_class="2xx"}'
        assert series in metrics.text, metrics.text
        assert (await http.get("/metrics", headers=plain)).status_code == 403  # role user: no metrics.view
        assert (await http.get("/audit", headers=dev)).status_code == 403
        assert (await http.get("/admin/users", headers=dev)).status_code == 403

        users = await http.get("/admin/users", headers=admin)
        assert users.status_code == 200 and {u["username"] for u in users.json()["users"]} == {"admin", "dev", "plain"}
        audit = await http.get("/audit", headers=admin, params={"limit": 500})
        assert audit.status_code == 200
        assert "user.create" in {row["action"] for row in audit.json()["items"]}
        # Paths the stack does not own still reach the app (its own 404 here).
        assert (await http.get("/metricsx", headers=dev)).status_code in (403, 404)
