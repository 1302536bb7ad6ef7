"""The HTTP admin API: CRUD, keys shown once, and privilege escalation attempts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.rbac.conftest import SECURE, client
from tframex_asgi import build_stack
from tframex_asgi.admin.bootstrap import bootstrap_admin
from tframex_asgi.admin.service import get_admin
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint


class Admin:
    def __init__(self, stack: Any, http: httpx.AsyncClient, key: str) -> None:
        self.stack, self.http, self.key = stack, http, key

    async def call(self, method: str, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        return await self.http.request(method, path, headers={"X-API-Key": key or self.key}, **kw)

    async def user_with_key(self, name: str, roles: list[str]) -> tuple[str, str]:
        created = await self.call("POST", "/admin/users", json={"username": name, "roles": roles})
        assert created.status_code == 201, created.text
        uid = created.json()["user"]["id"]
        key = await self.call("POST", "/admin/api-keys", json={"user_id": uid, "name": "t"})
        assert key.status_code == 201, key.text
        return uid, key.json()["key"]


@pytest.fixture
async def admin() -> AsyncIterator[Admin]:
    stack = build_stack(TFrameXEndpoint(build_demo_app()), **SECURE)
    async with stack, client(stack) as http:
        created = await bootstrap_admin(stack.services)
        assert created is not None
        yield Admin(stack, http, created[1])


async def test_users_roles_and_keys_lifecycle(admin: Admin) -> None:
    created = await admin.call(
        "POST",
        "/admin/users",
        json={"username": "erin", "email": "e@x.org", "password": "correct horse battery", "roles": ["developer"]},
    )
    assert created.status_code == 201
    user = created.json()["user"]
    assert user["roles"] == ["developer"] and user["effective_roles"] == ["developer", "user"]
    assert "password_hash" not in user and "correct horse" not in created.text
    uid = user["id"]
    assert (await admin.call("POST", "/admin/users", json={"username": "erin"})).status_code == 409
    listed = (await admin.call("GET", "/admin/users")).json()["users"]
    assert {u["username"] for u in listed} == {"admin", "erin"}
    assert (await admin.call("GET", f"/admin/users/{uid}")).json()["user"]["email"] == "e@x.org"
    assert (await admin.call("GET", "/admin/users/not-a-uuid")).status_code == 404

    # Keys: shown once at creation, never listed, revocable.
    made = await admin.call(
        "POST", "/admin/api-keys", json={"user_id": uid, "scopes": ["agent.view"], "expires_in_days": 30}
    )
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    key, key_id = made.json()["key"], made.json()["api_key"]["id"]
    assert made.json()["api_key"]["scopes"] == ["agent.view"] and "key_hash" not in made.json()["api_key"]
    listing = await admin.call("GET", f"/admin/api-keys?user_id={uid}")
    assert [k["id"] for k in listing.json()["api_keys"]] == [key_id] and key not in listing.text
    assert (await admin.call("GET", "/agents", key=key)).status_code == 200
    assert (await admin.call("GET", "/tools", key=key)).status_code == 403  # the key's scope narrows it
    assert (await admin.call("DELETE", f"/admin/api-keys/{key_id}")).status_code == 204
    assert (await admin.call("GET", "/agents", key=key)).status_code == 401
    assert (await admin.call("DELETE", "/admin/api-keys/00000000-0000-0000-0000-000000000000")).status_code == 404

    # Roles: grant, list, revoke, custom roles.
    granted = await admin.call("POST", f"/admin/users/{uid}/roles", json={"role": "operator"})
    assert granted.status_code == 201
    assert (await admin.call("POST", f"/admin/users/{uid}/roles", json={"role": "operator"})).status_code == 200
    roles = (await admin.call("GET", f"/admin/users/{uid}/roles")).json()["roles"]
    assert roles == ["developer", "operator"]
    assert (await admin.call("DELETE", f"/admin/users/{uid}/roles/operator")).status_code == 204
    assert (await admin.call("DELETE", f"/admin/users/{uid}/roles/operator")).status_code == 404
    made_role = await admin.call(
        "POST", "/admin/roles", json={"name": "viewer", "permissions": ["agent.view"], "inherits": ["developer"]}
    )
    assert made_role.status_code == 201
    assert "metrics.view" in made_role.json()["role"]["effective_permissions"]
    assert "viewer" in {r["name"] for r in (await admin.call("GET", "/admin/roles")).json()["roles"]}
    assert (await admin.call("DELETE", "/admin/roles/viewer")).status_code == 204
    assert (await admin.call("DELETE", "/admin/roles/admin")).status_code == 409

    # Disable: the user's keys stop working at once.
    _, erin_key = await admin.user_with_key("frank", ["developer"])
    frank = [u for u in (await admin.call("GET", "/admin/users")).json()["users"] if u["username"] == "frank"][0]
    assert (await admin.call("GET", "/agents", key=erin_key)).status_code == 200
    off = await admin.call("PATCH", f"/admin/users/{frank['id']}", json={"is_active": False})
    assert off.status_code == 200 and off.json()["user"]["is_active"] is False
    assert (await admin.call("GET", "/agents", key=erin_key)).status_code == 401


async def test_bad_requests_are_json_400(admin: Admin) -> None:
    for method, path, body in [
        ("POST", "/admin/users", {}),
        ("POST", "/admin/users", {"username": 5}),
        ("POST", "/admin/roles", {"name": "x", "permissions": "agent.view"}),
        ("PATCH", "/admin/users/00000000-0000-0000-0000-000000000001", {"is_active": "no"}),
        ("POST", "/admin/api-keys", {"user_id": "x", "expires_in_days": -1}),
    ]:
        resp = await admin.call(method, path, json=body)
        assert resp.status_code == 400, (path, resp.text)
        assert resp.json()["error"]["code"] in ("invalid_request", "invalid_value")
    raw = await admin.call("POST", "/admin/users", content=b"{not json")
    assert raw.status_code == 400
    scopes = await admin.call("POST", "/admin/api-keys", json={"scopes": ["made.up"]})
    assert scopes.status_code == 400


async def test_a_non_admin_can_never_grant_roles(admin: Admin) -> None:
    uid, key = await admin.user_with_key("mallory", ["developer"])
    # No role.manage: every role-changing route is 403, for others and for oneself.
    for role in ("admin", "developer", "user"):
        resp = await admin.call("POST", f"/admin/users/{uid}/roles", key=key, json={"role": role})
        assert resp.status_code == 403
    assert (await admin.call("POST", "/admin/roles", key=key, json={"name": "x", "permissions": []})).status_code == 403
    assert (
        await admin.call("POST", "/admin/users", key=key, json={"username": "m2", "roles": ["admin"]})
    ).status_code == 403
    roles = (await admin.call("GET", f"/admin/users/{uid}/roles")).json()["roles"]
    assert roles == ["developer"]


async def test_user_managers_cannot_escalate(admin: Admin) -> None:
    services = admin.stack.services
    rbac = get_admin(services).rbac
    await rbac.create_role("helpdesk", ["user.manage"])
    hid, hkey = await admin.user_with_key("helpdesk1", ["helpdesk"])
    admins = (await admin.call("GET", "/admin/users")).json()["users"]
    admin_id = [u["id"] for u in admins if u["username"] == "admin"][0]
    # Mint a key for the admin, disable the admin, revoke the admin's key: all refused.
    assert (await admin.call("POST", "/admin/api-keys", key=hkey, json={"user_id": admin_id})).status_code == 403
    assert (
        await admin.call("PATCH", f"/admin/users/{admin_id}", key=hkey, json={"is_active": False})
    ).status_code == 403
    admin_keys = (await admin.call("GET", f"/admin/api-keys?user_id={admin_id}", key=hkey)).json()["api_keys"]
    assert (await admin.call("DELETE", f"/admin/api-keys/{admin_keys[0]['id']}", key=hkey)).status_code == 403
    # Create a user with roles: needs role.manage.
    made = await admin.call("POST", "/admin/users", key=hkey, json={"username": "x1", "roles": ["admin"]})
    assert made.status_code == 403
    # Their own account and keys are theirs to manage; they cannot disable themselves.
    assert (await admin.call("POST", "/admin/api-keys", key=hkey, json={})).status_code == 201
    assert (await admin.call("PATCH", f"/admin/users/{hid}", key=hkey, json={"is_active": False})).status_code == 409
    # A role manager without admin's permissions cannot grant admin or create a superset role.
    await rbac.create_role("rolemgr", ["role.manage", "agent.view"])
    _, rkey = await admin.user_with_key("rm1", ["rolemgr"])
    assert (await admin.call("POST", f"/admin/users/{hid}/roles", key=rkey, json={"role": "admin"})).status_code == 403
    sneaky = await admin.call("POST", "/admin/roles", key=rkey, json={"name": "s", "permissions": ["user.manage"]})
    assert sneaky.status_code == 403
    inherit = await admin.call("POST", "/admin/roles", key=rkey, json={"name": "s", "inherits": ["operator"]})
    assert inherit.status_code == 403
    ok = await admin.call("POST", "/admin/roles", key=rkey, json={"name": "s", "permissions": ["agent.view"]})
    assert ok.status_code == 201


async def test_admin_routes_refuse_without_the_layer(admin: Admin) -> None:
    # Mounted in an app without our authorization layer, each handler still checks.
    from starlette.applications import Starlette

    from tframex_asgi.admin.routes import admin_routes

    bare = Starlette(routes=admin_routes(admin.stack.services))
    async with client(bare) as c:
        assert (await c.get("/admin/users")).status_code == 401


async def test_a_scoped_key_cannot_mint_a_wider_key_or_user(admin: Admin) -> None:
    narrow = await admin.call("POST", "/admin/api-keys", json={"scopes": ["user.manage"]})
    key = narrow.json()["key"]
    wider = await admin.call("POST", "/admin/api-keys", key=key, json={})
    assert wider.status_code == 403 and "do not hold" in wider.json()["error"]["message"]
    same = await admin.call("POST", "/admin/api-keys", key=key, json={"scopes": ["user.manage"]})
    assert same.status_code == 201
    # A new user gets the default role's permissions, which this key does not carry.
    user = await admin.call("POST", "/admin/users", key=key, json={"username": "pw", "password": "long password 1"})
    assert user.status_code == 403


class Recorder:
    def __init__(self) -> None:
        self.changes: list[dict[str, Any]] = []

    def log_change(self, **kw: Any) -> None:
        self.changes.append(kw)


async def test_admin_changes_are_audited_without_secrets(admin: Admin) -> None:
    audit = Recorder()
    admin.stack.services.audit_logger = audit
    uid, key = await admin.user_with_key("gina", ["developer"])
    await admin.call("POST", f"/admin/users/{uid}/roles", json={"role": "operator"})
    await admin.call("DELETE", f"/admin/users/{uid}/roles/operator")
    await admin.call("PATCH", f"/admin/users/{uid}", json={"is_active": False})
    await admin.call("POST", "/admin/users", json={"username": "hal", "password": "a secret password"})
    actions = [c["action"] for c in audit.changes]
    assert actions == ["user.create", "api_key.create", "role.grant", "role.revoke", "user.disable", "user.create"]
    assert all(c["principal"].username == "admin" and c["scope"] is not None for c in audit.changes)
    dumped = repr(audit.changes)
    assert key not in dumped and "a secret password" not in dumped
