"""Administrative operations on users, roles and API keys, shared by the HTTP admin API and the CLI.

Every change is authorized here (not only by the route table), invalidates the caches that
would otherwise keep serving the old grants, and is written to the audit log when audit is on.
``by`` is the acting :class:`~tframex_asgi.auth.principal.Principal`; ``None`` means the local
operator (CLI, bootstrap), who is trusted like the database owner.

Escalation rules: granting, revoking or creating a role needs ``role.manage`` and every
permission involved; acting on another user's account or keys (disable, new key, revoke key)
needs every permission that user holds, so a ``user.manage`` holder cannot mint a key for an
admin and become one. "That user" is compared by stored user id only
(:func:`~tframex_asgi.auth.principal.stored_user_id`): a token identity is never a stored user,
whatever its ``sub``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tframex_asgi.auth.principal import stored_user_id
from tframex_asgi.errors import AuthorizationError, ConflictError, NotFoundError, ValidationError
from tframex_asgi.rbac.engine import RBACEngine, check_can_assign
from tframex_asgi.types import Scope
from tframex_asgi.util import is_uuid

if TYPE_CHECKING:
    from tframex_asgi.auth.store import IdentityStore
    from tframex_asgi.services import Services
    from tframex_asgi.storage.base import Row

__all__ = ["AdminService", "get_admin"]


def _require(by: Any, permission: str) -> None:
    if by is not None and permission not in getattr(by, "permissions", ()):
        raise AuthorizationError(f"missing permission {permission}")


class AdminService:
    def __init__(self, services: Services, rbac: RBACEngine, identity: IdentityStore) -> None:
        self.services = services
        self.rbac = rbac
        self.identity = identity

    def _audit(self, by: Any, action: str, rtype: str, rid: str | None, scope: Scope | None, **values: Any) -> None:
        audit = self.services.built("audit_logger")  # the stack's logger, if audit is on
        if audit is not None:
            audit.log_change(
                principal=by, action=action, resource_type=rtype, resource_id=rid,
                old_values=values.get("old"), new_values=values.get("new"), scope=scope,
            )  # fmt: skip

    def _changed(self, user_id: str | None = None) -> None:
        # Authentication caches whole principals (roles included): drop them with the grants.
        self.rbac.invalidate(user_id)
        self.identity.invalidate()

    async def _user(self, user_id: str) -> Row:
        row = await self.identity.get_user(user_id)
        if row is None:
            raise NotFoundError("no such user")
        return row

    @staticmethod
    def _holds(by: Any, permissions: frozenset[str], what: str) -> None:
        missing = permissions - frozenset(getattr(by, "permissions", ())) if by is not None else frozenset()
        if missing:
            raise AuthorizationError(f"{what} would give permissions you do not hold: {', '.join(sorted(missing))}")

    async def _outranks(self, by: Any, user_id: str, what: str) -> None:
        """``by`` holds every permission ``user_id`` holds (or is that user)."""
        if by is None or stored_user_id(by) == user_id:
            return
        theirs = self.rbac.permissions_for_roles(await self.rbac.roles_for_user(user_id))
        missing = theirs - frozenset(getattr(by, "permissions", ()))
        if missing:
            raise AuthorizationError(
                f"{what} a user who holds permissions you do not hold: {', '.join(sorted(missing))}"
            )

    # -- users --------------------------------------------------------------------------

    async def with_roles(self, row: Row) -> Row:
        """The user row with granted ``roles`` and ``effective_roles`` (plus the default role)."""
        roles = await self.rbac.stored_roles(str(row["id"]))
        default = {self.rbac.default_role} if self.rbac.default_role else set()
        return {**row, "roles": sorted(roles), "effective_roles": sorted(roles | default)}

    async def list_users(self, limit: int = 100, offset: int = 0) -> list[Row]:
        return [await self.with_roles(r) for r in await self.identity.list_users(limit=limit, offset=offset)]

    async def get_user(self, user_id: str) -> Row:
        return await self.with_roles(await self._user(user_id))

    async def create_user(
        self,
        username: str,
        *,
        email: str | None = None,
        password: str | None = None,
        roles: Iterable[str] = (),
        by: Any = None,
        scope: Scope | None = None,
    ) -> Row:
        _require(by, "user.manage")
        wanted = list(dict.fromkeys(roles))
        for role in wanted:
            if self.rbac.get_role(role) is None:
                raise ValidationError(f"no such role: {role!r}")
        if wanted:  # refuse before anything is written
            check_can_assign(by, self.rbac.permissions_for_roles(wanted), what="creating a user with these roles")
        default = [self.rbac.default_role] if self.rbac.default_role else []
        self._holds(by, self.rbac.permissions_for_roles(default), "creating a user (who gets the default role)")
        row = await self.identity.create_user(username, email=email, password=password)
        for role in wanted:
            await self.rbac.grant(str(row["id"]), role, by=by)
        self._changed(str(row["id"]))
        new = {"username": username, "email": email, "roles": wanted, "password_set": password is not None}
        self._audit(by, "user.create", "user", str(row["id"]), scope, new=new)
        return await self.with_roles(row)

    async def set_active(self, user_id: str, active: bool, *, by: Any = None, scope: Scope | None = None) -> Row:
        _require(by, "user.manage")
        row = await self._user(user_id)
        if not active and stored_user_id(by) == user_id:
            raise ConflictError("you cannot disable your own account")
        await self._outranks(by, user_id, "changing")
        await self.identity.set_active(user_id, active)
        self._changed(user_id)
        old, new = {"is_active": row.get("is_active")}, {"is_active": active}
        self._audit(by, "user.enable" if active else "user.disable", "user", user_id, scope, old=old, new=new)
        return await self.get_user(user_id)

    # -- roles --------------------------------------------------------------------------

    async def grant(self, user_id: str, role: str, *, by: Any = None, scope: Scope | None = None) -> bool:
        await self._user(user_id)
        created = await self.rbac.grant(user_id, role, by=by)
        self._changed(user_id)
        if created:
            self._audit(by, "role.grant", "user_role", user_id, scope, new={"role": role})
        return created

    async def revoke(self, user_id: str, role: str, *, by: Any = None, scope: Scope | None = None) -> bool:
        await self._user(user_id)
        removed = await self.rbac.revoke(user_id, role, by=by)
        self._changed(user_id)
        if removed:
            self._audit(by, "role.revoke", "user_role", user_id, scope, old={"role": role})
        return removed

    async def create_role(
        self,
        name: str,
        permissions: Iterable[str],
        inherits: Iterable[str] = (),
        description: str | None = None,
        *,
        by: Any = None,
        scope: Scope | None = None,
    ) -> dict[str, Any]:
        role = await self.rbac.create_role(name, permissions, inherits, description, by=by)
        self._changed()
        new = {"permissions": sorted(role.permissions), "inherits": list(role.inherits)}
        self._audit(by, "role.create", "role", name, scope, new=new)
        return next(r for r in self.rbac.list_roles() if r["name"] == name)

    async def delete_role(self, name: str, *, by: Any = None, scope: Scope | None = None) -> bool:
        deleted = await self.rbac.delete_role(name, by=by)
        if deleted:
            self._changed()
            self._audit(by, "role.delete", "role", name, scope)
        return deleted

    # -- API keys -----------------------------------------------------------------------

    async def create_key(
        self,
        user_id: str | None = None,
        *,
        name: str | None = None,
        scopes: Iterable[str] = (),
        expires_at: datetime | None = None,
        by: Any = None,
        scope: Scope | None = None,
    ) -> tuple[Row, str]:
        _require(by, "user.manage")
        target = user_id or stored_user_id(by)
        if not target:
            raise ValidationError("user_id is required")
        user = await self._user(target)
        if not user.get("is_active", True):
            raise ConflictError("the user is disabled")
        await self._outranks(by, target, "creating a key for")
        wanted = sorted(set(scopes))
        for s in wanted:
            if s not in self.rbac.all_permissions:
                raise ValidationError(f"unknown permission in scopes: {s!r}")
        # Even for one's own account: a scoped key must not mint a key wider than itself.
        theirs = self.rbac.permissions_for_roles(await self.rbac.roles_for_user(target))
        self._holds(by, theirs & frozenset(wanted) if wanted else theirs, "this key")
        row, key = await self.identity.create_api_key(target, name=name, scopes=wanted, expires_at=expires_at)
        new = {"user_id": target, "name": name, "scopes": wanted, "expires_at": str(expires_at) if expires_at else None}
        self._audit(by, "api_key.create", "api_key", str(row["id"]), scope, new=new)
        return row, key

    async def list_keys(self, user_id: str | None = None) -> list[Row]:
        return await self.identity.list_api_keys(user_id)

    async def revoke_key(self, key_id: str, *, by: Any = None, scope: Scope | None = None) -> bool:
        _require(by, "user.manage")
        rows = await self.services.storage.read("api_keys", {"id": key_id}, limit=1) if is_uuid(key_id) else []
        if not rows:
            return False
        await self._outranks(by, str(rows[0]["user_id"]), "revoking a key of")
        revoked = await self.identity.revoke_api_key(key_id)
        self._changed()
        if revoked:
            self._audit(by, "api_key.revoke", "api_key", key_id, scope, old={"user_id": str(rows[0]["user_id"])})
        return revoked


def get_admin(services: Services) -> AdminService:
    """The stack's admin service: ``services.admin``."""
    return services.admin
