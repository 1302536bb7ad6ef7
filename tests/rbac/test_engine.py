"""RBACEngine: seeding, inheritance, cache TTL and invalidation, and escalation rules."""

from __future__ import annotations

import pytest

from tests.rbac.conftest import new_user, principal
from tframex_asgi.clock import ManualClock
from tframex_asgi.config.security import RBACConfig, RoleConfig
from tframex_asgi.errors import AuthorizationError, ConflictError, NotFoundError, ValidationError
from tframex_asgi.rbac.engine import RBACEngine
from tframex_asgi.rbac.permissions import DEFAULT_ROLES, PERMISSIONS
from tframex_asgi.storage import BaseStorage


async def test_seeds_the_seed_tables_idempotently(storage: BaseStorage, engine: RBACEngine) -> None:
    perms = {r["name"] for r in await storage.read("permissions")}
    assert set(PERMISSIONS) <= perms
    assert {r["name"] for r in await storage.read("roles")} == set(DEFAULT_ROLES)
    links = await storage.count("role_permissions")
    await engine.start()  # a second start (or a second process) adds nothing
    await RBACEngine(storage).start()
    assert await storage.count("role_permissions") == links
    assert await storage.count("roles") == len(DEFAULT_ROLES)
    user = await storage.read("roles", {"name": "user"})
    granted = await storage.read("role_permissions", {"role_id": user[0]["id"]})
    assert len(granted) == len(DEFAULT_ROLES["user"])


async def test_default_roles_and_admin_has_everything(engine: RBACEngine) -> None:
    assert engine.permissions_for_roles(["user"]) == frozenset(DEFAULT_ROLES["user"])
    assert engine.permissions_for_roles(["admin"]) == frozenset(PERMISSIONS)
    assert engine.permissions_for_roles(["developer", "operator"]) == frozenset(
        DEFAULT_ROLES["developer"] + DEFAULT_ROLES["operator"]
    )
    assert engine.permissions_for_roles(["no-such-role"]) == frozenset()
    assert engine.permissions_for_roles([]) == frozenset()


async def test_engine_works_before_start(storage: BaseStorage) -> None:
    rbac = RBACEngine(storage)
    assert rbac.permissions_for_roles(["admin"]) == frozenset(PERMISSIONS)


async def test_config_roles_inherit_and_are_resynced(storage: BaseStorage) -> None:
    cfg = RBACConfig(roles={
        "analyst": RoleConfig(permissions=("data.read", "report.view"), inherits=("developer",)),
        "lead": RoleConfig(permissions=("data.delete",), inherits=("analyst",)),
    })  # fmt: skip
    rbac = RBACEngine(storage, config=cfg)
    await rbac.start()
    lead = rbac.permissions_for_roles(["lead"])
    assert {"data.delete", "data.read", "report.view", *DEFAULT_ROLES["developer"]} == set(lead)
    assert "report.view" in rbac.all_permissions  # custom permission seeded
    assert rbac.permissions_for_roles(["admin"]) >= {"report.view"}
    # The config changes: the next start sets the role's grants exactly (removals too).
    cfg2 = RBACConfig(roles={"analyst": RoleConfig(permissions=("data.read",))})
    rbac2 = RBACEngine(storage, config=cfg2)
    await rbac2.start()
    assert rbac2.permissions_for_roles(["analyst"]) == {"data.read"}


async def test_roles_for_user_default_role_cache_and_ttl(storage: BaseStorage, clock: ManualClock) -> None:
    rbac = RBACEngine(storage, clock, RBACConfig(cache_ttl=60))
    await rbac.start()
    other_process = RBACEngine(storage, clock, RBACConfig(cache_ttl=60))
    await other_process.start()
    uid = await new_user(storage, "bob")
    assert await rbac.roles_for_user(uid) == {"user"}
    assert await rbac.roles_for_user("jwt-subject|not-a-uuid") == {"user"}
    await other_process.grant(uid, "developer")
    assert await rbac.roles_for_user(uid) == {"user"}  # cached: the change was made elsewhere
    clock.advance(61)
    assert await rbac.roles_for_user(uid) == {"user", "developer"}
    # A change through this engine shows at once (its own cache is invalidated).
    await rbac.revoke(uid, "developer")
    assert await rbac.roles_for_user(uid) == {"user"}
    no_default = RBACEngine(storage, clock, RBACConfig(default_role=None))
    await no_default.start()
    assert await no_default.roles_for_user(uid) == frozenset()


async def test_role_table_changes_from_another_process_show_after_ttl(storage: BaseStorage, clock: ManualClock) -> None:
    rbac = RBACEngine(storage, clock, RBACConfig(cache_ttl=10))
    await rbac.start()
    other = RBACEngine(storage, clock)
    await other.start()
    await other.create_role("auditor", ["audit.view"])
    uid = await new_user(storage, "carol")
    await other.grant(uid, "auditor")
    assert rbac.get_role("auditor") is None
    clock.advance(11)
    assert "auditor" in await rbac.roles_for_user(uid)
    assert rbac.permissions_for_roles(["auditor"]) == {"audit.view"}
    rbac.invalidate()
    await rbac.delete_role("auditor")
    assert "auditor" not in await rbac.roles_for_user(uid)
    assert await storage.count("user_roles") == 0


async def test_grant_revoke_need_role_manage_and_every_permission(storage: BaseStorage, engine: RBACEngine) -> None:
    uid = await new_user(storage, "dave")
    for nobody in (principal([]), principal(["user.manage", "system.admin"])):
        with pytest.raises(AuthorizationError, match="role.manage"):
            await engine.grant(uid, "developer", by=nobody)
    # role.manage alone cannot hand out permissions it lacks, least of all admin.
    manager = principal(["role.manage", "agent.view", "tool.view", "flow.view", "metrics.view"])
    with pytest.raises(AuthorizationError, match="do not hold"):
        await engine.grant(uid, "admin", by=manager)
    with pytest.raises(AuthorizationError, match="do not hold"):
        await engine.grant(uid, "user", by=manager)
    assert await engine.grant(uid, "developer", by=manager) is True
    assert await engine.grant(uid, "developer", by=manager) is False
    assert await engine.stored_roles(uid) == {"developer"}
    with pytest.raises(AuthorizationError):
        await engine.revoke(uid, "developer", by=principal(["user.manage"]))
    assert await engine.revoke(uid, "developer", by=manager) is True
    assert await engine.revoke(uid, "developer", by=manager) is False
    with pytest.raises(NotFoundError):
        await engine.grant(uid, "no-such-role")
    with pytest.raises(NotFoundError):
        await engine.grant("00000000-0000-0000-0000-00000000dead", "developer")
    with pytest.raises(NotFoundError):
        await engine.grant("not-a-uuid", "developer")


async def test_last_admin_cannot_be_revoked(storage: BaseStorage, engine: RBACEngine) -> None:
    a, b = await new_user(storage, "a"), await new_user(storage, "b")
    await engine.grant(a, "admin")
    with pytest.raises(ConflictError, match="last admin"):
        await engine.revoke(a, "admin")
    await engine.grant(b, "admin")
    assert await engine.revoke(a, "admin") is True
    assert await engine.roles_for_user(a) == {"user"}


async def test_create_role_validation_and_escalation(engine: RBACEngine) -> None:
    manager = principal(["role.manage", "agent.view", "data.read"])
    with pytest.raises(AuthorizationError, match="do not hold"):
        await engine.create_role("sneaky", ["agent.view", "user.manage"], by=manager)
    with pytest.raises(AuthorizationError, match="do not hold"):
        await engine.create_role("sneaky", ["agent.view"], inherits=["admin"], by=manager)
    role = await engine.create_role("viewer", ["agent.view", "data.read"], description="reads", by=manager)
    assert role.id and role.permissions == {"agent.view", "data.read"}
    with pytest.raises(ConflictError):
        await engine.create_role("viewer", ["agent.view"])
    with pytest.raises(ConflictError):
        await engine.create_role("admin", [])
    with pytest.raises(ValidationError):
        await engine.create_role("Bad Name", [])
    with pytest.raises(ValidationError):
        await engine.create_role("x", ["not-a-permission"])
    with pytest.raises(ValidationError, match="unknown permission"):
        await engine.create_role("x", ["made.up"], by=principal(["role.manage", "made.up"]))
    with pytest.raises(ValidationError, match="unknown role"):
        await engine.create_role("x", [], inherits=["ghost"])
    child = await engine.create_role("child", [], inherits=["viewer"])
    assert engine.permissions_for_roles([child.name]) == {"agent.view", "data.read"}
    with pytest.raises(ConflictError, match="inherited"):
        await engine.delete_role("viewer")
    with pytest.raises(ConflictError, match="cannot be deleted"):
        await engine.delete_role("user")
    assert await engine.delete_role("child") is True
    assert await engine.delete_role("child") is False
    names = {r["name"] for r in engine.list_roles()}
    assert "viewer" in names and "child" not in names
