"""require_permission (Starlette decorator), RequirePermission (FastAPI dependency) and owns()."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, UnauthenticatedUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.rbac.conftest import client, principal
from tframex_asgi.rbac import RequirePermission, owns, require_permission

ME = "00000000-0000-0000-0000-000000000001"


class HeaderBackend(AuthenticationBackend):
    """Test-only: permissions from a header (the real stack never trusts headers for identity)."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, Any] | None:
        raw = conn.headers.get("x-test-perms")
        if raw is None:
            return AuthCredentials([]), UnauthenticatedUser()
        perms = [p for p in raw.split(",") if p]
        return AuthCredentials(perms), principal(perms, id=ME)


@require_permission("agent.view")
async def agents(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@require_permission("data.read", "data.delete", any_of=True)
def sync_endpoint(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def mine(request: Request) -> JSONResponse:
    return JSONResponse({"mine": owns(request.scope, request.path_params["owner"])})


def starlette_app() -> Starlette:
    routes = [Route("/agents", agents), Route("/sync", sync_endpoint), Route("/own/{owner}", mine)]
    return Starlette(routes=routes, middleware=[Middleware(AuthenticationMiddleware, backend=HeaderBackend())])


async def test_starlette_decorator() -> None:
    async with client(starlette_app()) as c:
        assert (await c.get("/agents", headers={"x-test-perms": "agent.view"})).status_code == 200
        denied = await c.get("/agents", headers={"x-test-perms": "agent.execute"})
        assert denied.status_code == 403
        assert denied.json() == {"error": {"code": "forbidden", "message": "missing permission agent.view"}}
        anonymous = await c.get("/agents")
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthenticated"
        assert (await c.get("/sync", headers={"x-test-perms": "data.delete"})).status_code == 200
        assert (await c.get("/sync", headers={"x-test-perms": "agent.view"})).status_code == 403


async def test_owns_is_own_rows_unless_system_admin() -> None:
    async with client(starlette_app()) as c:
        assert (await c.get(f"/own/{ME}", headers={"x-test-perms": "data.read"})).json() == {"mine": True}
        assert (await c.get("/own/someone-else", headers={"x-test-perms": "data.read"})).json() == {"mine": False}
        assert (await c.get("/own/someone-else", headers={"x-test-perms": "system.admin"})).json() == {"mine": True}
        assert (await c.get(f"/own/{ME}")).json() == {"mine": False}  # anonymous owns nothing


async def test_fastapi_dependency() -> None:
    api = FastAPI()
    api.add_middleware(AuthenticationMiddleware, backend=HeaderBackend())

    @api.get("/agents")
    async def list_agents(user: Any = Depends(RequirePermission("agent.view"))) -> dict[str, str]:
        return {"user": user.username}

    @api.delete("/things/{id}", dependencies=[Depends(RequirePermission("data.delete"))])
    async def delete_thing(id: str) -> dict[str, str]:
        return {"deleted": id}

    async with client(api) as c:
        ok = await c.get("/agents", headers={"x-test-perms": "agent.view"})
        assert ok.status_code == 200 and ok.json() == {"user": "p"}
        assert (await c.get("/agents", headers={"x-test-perms": "tool.view"})).status_code == 403
        anonymous = await c.get("/agents")
        assert anonymous.status_code == 401 and "www-authenticate" in anonymous.headers
        assert (await c.delete("/things/1", headers={"x-test-perms": "data.read"})).status_code == 403
        assert (await c.delete("/things/1", headers={"x-test-perms": "data.delete"})).json() == {"deleted": "1"}
