"""The admin API refuses unknown and wrong-typed fields with a 400 naming the field, like config
keys: nothing sent is silently ignored (``{"username": "u", "is_superuser": true}`` was 201)."""

from __future__ import annotations

import pytest

from tests.admin.test_admin_api import Admin, admin  # noqa: F401  (fixture)

UID = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/admin/users", {"username": "u", "is_superuser": True}, "is_superuser"),
        ("POST", "/admin/users", {"username": "u", "role": "admin"}, "role"),  # 'roles' misspelt
        ("POST", "/admin/users", {"username": 7}, "username"),
        ("POST", "/admin/users", {"username": "u", "roles": "admin"}, "roles"),
        ("POST", "/admin/users", {"username": "u", "email": ["a@b.c"]}, "email"),
        ("PATCH", f"/admin/users/{UID}", {"is_active": True, "is_admin": True}, "is_admin"),
        ("PATCH", f"/admin/users/{UID}", {"is_active": "yes"}, "is_active"),
        ("POST", f"/admin/users/{UID}/roles", {"role": "admin", "expires": "never"}, "expires"),
        ("POST", "/admin/roles", {"name": "r", "permissions": ["agent.view"], "superuser": True}, "superuser"),
        ("POST", "/admin/roles", {"name": "r", "permissions": "agent.view"}, "permissions"),
        ("POST", "/admin/api-keys", {"name": "k", "scope": ["system.admin"]}, "scope"),  # 'scopes' misspelt
        ("POST", "/admin/api-keys", {"name": "k", "expires_at": 1767225600}, "expires_at"),
        ("POST", "/admin/api-keys", {"name": "k", "expires_in_days": "30"}, "expires_in_days"),
        ("POST", "/admin/api-keys", {"name": "k", "expires_in_days": 1, "expires_at": "2030-01-01"}, "expires_at"),
    ],
)
async def test_unknown_or_wrong_typed_fields_are_400_naming_the_field(
    admin: Admin,  # noqa: F811
    method: str,
    path: str,
    body: dict[str, object],
    field: str,
) -> None:
    resp = await admin.call(method, path, json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_request" and f"'{field}'" in error["message"], error
    # Nothing was created on the way.
    users = (await admin.call("GET", "/admin/users")).json()["users"]
    assert [u["username"] for u in users] == ["admin"]
    assert {r["name"] for r in (await admin.call("GET", "/admin/roles")).json()["roles"]} >= {"admin"}
    assert "r" not in {r["name"] for r in (await admin.call("GET", "/admin/roles")).json()["roles"]}


async def test_known_fields_still_work(admin: Admin) -> None:  # noqa: F811
    made = await admin.call("POST", "/admin/users", json={"username": "u", "email": None, "roles": ["developer"]})
    assert made.status_code == 201, made.text
    uid = made.json()["user"]["id"]
    assert (await admin.call("PATCH", f"/admin/users/{uid}", json={"is_active": False})).status_code == 200
