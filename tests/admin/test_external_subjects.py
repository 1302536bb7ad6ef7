"""Issue 11.5: a token identity is never a stored user, whatever its ``sub``. Before, a JWT
holding only ``user.manage`` whose ``sub`` equalled a disabled admin's UUID passed the
escalation checks as that admin ("acting on yourself"): it could re-enable the admin (PATCH 200)
and delete its key (DELETE 204), while any other ``sub`` got 403."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.rbac.conftest import client
from tframex_asgi import build_stack
from tframex_asgi.admin.bootstrap import bootstrap_admin
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint
from tframex_asgi.rbac import owns

SECRET = "a-shared-secret-of-at-least-32-bytes!!"


def token(sub: str, roles: list[str]) -> str:
    now = int(time.time())
    claims = {"sub": sub, "exp": now + 300, "iat": now, "roles": roles, "preferred_username": "helpdesk"}
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(SECRET), algorithms=["HS256"])


@pytest.fixture
async def env() -> AsyncIterator[tuple[Any, httpx.AsyncClient, str]]:
    stack = build_stack(
        TFrameXEndpoint(build_demo_app()),
        enable_security=True,
        security_config={
            "auth_providers": {"api_key": True, "jwt": {"enabled": True, "algorithms": ["HS256"], "secret": SECRET}},
            "rbac": {"roles": {"helpdesk": {"permissions": ["user.manage"]}}},
            "audit": "off",
        },
    )
    async with stack, client(stack) as http:
        created = await bootstrap_admin(stack.services)
        assert created is not None
        yield stack, http, created[1]


async def test_token_sub_equal_to_a_user_id_is_not_that_user(env) -> None:
    stack, http, root_key = env
    root = {"X-API-Key": root_key}
    made = await http.post("/admin/users", headers=root, json={"username": "admin2", "roles": ["admin"]})
    victim = made.json()["user"]["id"]
    key = await http.post("/admin/api-keys", headers=root, json={"user_id": victim})
    key_id = key.json()["api_key"]["id"]
    assert (await http.patch(f"/admin/users/{victim}", headers=root, json={"is_active": False})).status_code == 200

    forged = {"Authorization": f"Bearer {token(victim, ['helpdesk'])}"}
    enable = await http.patch(f"/admin/users/{victim}", headers=forged, json={"is_active": True})
    assert enable.status_code == 403, enable.text
    delete = await http.delete(f"/admin/api-keys/{key_id}", headers=forged)
    assert delete.status_code == 403, delete.text
    # Without user_id, a key would be minted for "yourself": a token has no stored self.
    mint = await http.post("/admin/api-keys", headers=forged, json={})
    assert mint.status_code == 400, mint.text
    # The same as any other subject gets.
    other = {"Authorization": f"Bearer {token('someone-else', ['helpdesk'])}"}
    assert (await http.patch(f"/admin/users/{victim}", headers=other, json={"is_active": True})).status_code == 403
    # Nothing changed.
    user = (await http.get(f"/admin/users/{victim}", headers=root)).json()["user"]
    assert user["is_active"] in (False, 0)
    keys = (await http.get(f"/admin/api-keys?user_id={victim}", headers=root)).json()["api_keys"]
    assert [k["revoked_at"] for k in keys] == [None]


async def test_owns_compares_namespaced_subjects() -> None:
    row_owner = "3f1d2c9e-0000-4000-8000-000000000001"

    async def mine(request: Request) -> JSONResponse:
        return JSONResponse({"owns": owns(request.scope, row_owner)})

    from starlette.applications import Starlette

    stack = build_stack(
        Starlette(routes=[Route("/mine", mine)]),
        enable_security=True,
        security_config={
            "auth_providers": {"jwt": {"enabled": True, "algorithms": ["HS256"], "secret": SECRET}},
            "rbac": {"routes": {"GET /mine": "agent.execute"}},
            "audit": "off",
        },
    )
    async with stack, client(stack) as http:
        resp = await http.get("/mine", headers={"Authorization": f"Bearer {token(row_owner, ['user'])}"})
        assert resp.status_code == 200 and resp.json() == {"owns": False}
