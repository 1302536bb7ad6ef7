"""The RBAC engine: roles (seeded, configured or created at run time) and who holds them.

Roles, permissions and grants live in the seed's tables (``roles``, ``permissions``,
``role_permissions``, ``user_roles``). The role table is small and read on every request, so it
is held in memory and reloaded when its TTL runs out, at once after a change made through this
engine, and within a second after a change made by another process (the change signal of
:mod:`tframex_asgi.auth.changes`). Inheritance
edges are stored as ``role_permissions`` rows pointing at a pseudo-permission
``@role:<parent>`` so the seed schema needs no extra column.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tframex_asgi.auth.changes import publish_change
from tframex_asgi.catalog.permissions import (
    ADMIN_ROLE,
    DEFAULT_ROLES,
    PERMISSIONS,
    ROLE_NAME_RULE,
    is_permission_name,
    is_role_name,
)
from tframex_asgi.clock import Clock, SystemClock
from tframex_asgi.config.security import RBACConfig
from tframex_asgi.errors import AuthorizationError, ConflictError, NotFoundError, ValidationError
from tframex_asgi.rbac import store
from tframex_asgi.rbac.store import Role
from tframex_asgi.util import is_uuid, memo_put

if TYPE_CHECKING:
    from tframex_asgi.services import Services
    from tframex_asgi.storage.base import BaseStorage

__all__ = ["RBACEngine", "Role", "check_can_assign", "get_rbac"]

logger = logging.getLogger("tframex_asgi.rbac")
_MAX_CACHED_USERS = 10_000


@dataclass
class _Snapshot:
    roles: dict[str, Role] = field(default_factory=dict)
    names_by_id: dict[str, str] = field(default_factory=dict)
    permissions: frozenset[str] = frozenset()


def _declared_roles(config: RBACConfig) -> dict[str, Role]:
    """The seed's roles overlaid with the configured ones (config wins for a name in both)."""
    roles = {name: Role(name, frozenset(perms), builtin=True) for name, perms in DEFAULT_ROLES.items()}
    for name, rc in config.roles.items():
        roles[name] = Role(name, frozenset(rc.permissions), tuple(rc.inherits), rc.description or None, True)
    return roles


def _declared_permissions(roles: Iterable[Role], config: RBACConfig) -> dict[str, str]:
    perms = dict(PERMISSIONS)
    for role in roles:
        for p in role.permissions:
            perms.setdefault(p, "")
    # Permissions only resource rules name exist too: admin holds them, keys may be scoped to them.
    for p in sorted(config.resources.permissions):
        perms.setdefault(p, "")
    return perms


def check_can_assign(by: Any, permissions: Iterable[str], *, what: str) -> None:
    """``by`` (a Principal; None = local operator/CLI) may hand out ``permissions``.

    Needs ``role.manage`` and every permission handed out: nobody can grant more than they hold,
    so a custom role with role.manage cannot promote itself to admin.
    """
    if by is None:
        return
    held: frozenset[str] = frozenset(getattr(by, "permissions", ()))
    if "role.manage" not in held:
        raise AuthorizationError(f"{what} needs the role.manage permission")
    missing = sorted(set(permissions) - held)
    if missing:
        raise AuthorizationError(f"{what} would hand out permissions you do not hold: {', '.join(missing)}")


class RBACEngine:
    """See the module docstring. Obtain the shared one with :func:`get_rbac`."""

    def __init__(self, storage: BaseStorage, clock: Clock | None = None, config: RBACConfig | None = None) -> None:
        self.storage = storage
        self.clock = clock or SystemClock()
        self.config = config or RBACConfig()
        self.default_role = self.config.default_role
        self.ttl = self.config.cache_ttl
        declared = _declared_roles(self.config)
        # Usable before start(): the declared roles resolve without storage.
        self._snap = _Snapshot(dict(declared), {}, frozenset(_declared_permissions(declared.values(), self.config)))
        self._loaded_at = float("-inf")
        self._users: dict[str, tuple[float, frozenset[str]]] = {}
        self._memo: dict[frozenset[str], frozenset[str]] = {}
        self._lock = asyncio.Lock()
        self.started = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Seed permissions and declared roles (idempotent, safe with several processes), load."""
        declared = _declared_roles(self.config)
        await store.seed(self.storage, _declared_permissions(declared.values(), self.config), declared)
        await self.reload()
        self.started = True

    async def reload(self) -> None:
        roles, names_by_id, perms = await store.load(self.storage, frozenset(_declared_roles(self.config)))
        self._snap = _Snapshot(roles, names_by_id, perms)
        self._memo = {}
        self._loaded_at = self.clock.monotonic()

    def invalidate(self, user_id: str | None = None) -> None:
        """Forget cached grants (of one user, or everything, then the role table is reread)."""
        if user_id is not None:
            self._users.pop(user_id, None)
            return
        self._users.clear()
        self._loaded_at = float("-inf")

    async def _fresh(self) -> None:
        if self.clock.monotonic() - self._loaded_at < self.ttl:
            return
        async with self._lock:  # one reload at a time, however many requests see it stale
            if self.clock.monotonic() - self._loaded_at >= self.ttl:
                await self.reload()
                self._users.clear()

    # -- lookups ------------------------------------------------------------------------

    @property
    def all_permissions(self) -> frozenset[str]:
        return self._snap.permissions

    def get_role(self, name: str) -> Role | None:
        return self._snap.roles.get(name)

    def list_roles(self) -> list[dict[str, Any]]:
        """Every role with its direct, inherited and effective permissions (from the cache)."""
        return [
            {
                "name": r.name,
                "description": r.description,
                "permissions": sorted(r.permissions),
                "inherits": list(r.inherits),
                "effective_permissions": sorted(self.permissions_for_roles([r.name])),
                "builtin": r.builtin,
            }
            for r in sorted(self._snap.roles.values(), key=lambda r: r.name)
        ]

    def permissions_for_roles(self, roles: Iterable[str]) -> frozenset[str]:
        """Permissions of ``roles`` with inheritance resolved; ``admin`` has every permission."""
        key = frozenset(roles)
        found = self._memo.get(key)
        if found is not None:
            return found
        snap = self._snap
        out: set[str] = set()
        seen: set[str] = set()
        pending = list(key)
        while pending:
            name = pending.pop()
            if name in seen:
                continue  # cycles (made outside config validation) end here
            seen.add(name)
            if name == ADMIN_ROLE:
                out |= snap.permissions
            role = snap.roles.get(name)
            if role is not None:
                out |= role.permissions
                pending.extend(role.inherits)
        result = frozenset(out)
        if len(self._memo) < 4096:
            self._memo[key] = result
        return result

    async def roles_for_user(self, user_id: str) -> frozenset[str]:
        """The roles granted to a stored user, plus ``default_role``; cached for ``cache_ttl``."""
        await self._fresh()
        now = self.clock.monotonic()
        cached = self._users.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        names: set[str] = set()
        if is_uuid(user_id):
            rows = await self.storage.read("user_roles", {"user_id": user_id})
            names = {self._snap.names_by_id[r["role_id"]] for r in rows if r["role_id"] in self._snap.names_by_id}
        if self.default_role:
            names.add(self.default_role)
        roles = frozenset(names)
        memo_put(self._users, user_id, (now + self.ttl, roles), _MAX_CACHED_USERS)
        return roles

    async def stored_roles(self, user_id: str) -> frozenset[str]:
        """Roles granted to ``user_id`` in storage (no default role, no cache)."""
        await self._fresh()
        rows = await self.storage.read("user_roles", {"user_id": user_id}) if is_uuid(user_id) else []
        return frozenset(self._snap.names_by_id[r["role_id"]] for r in rows if r["role_id"] in self._snap.names_by_id)

    # -- changes ------------------------------------------------------------------------

    def _role(self, name: str) -> Role:
        role = self._snap.roles.get(name)
        if role is None or role.id is None:
            raise NotFoundError(f"no such role: {name!r}")
        return role

    async def grant(self, user_id: str, role: str, *, by: Any = None) -> bool:
        """Give ``role`` to a stored user; False when they already had it."""
        await self._fresh()
        target = self._role(role)
        check_can_assign(by, self.permissions_for_roles([role]), what=f"granting role {role!r}")
        await _require_user(self.storage, user_id)
        assigner = getattr(by, "id", None)
        assigned_by = assigner if is_uuid(assigner) and not getattr(by, "external", False) else None
        created = await store.link_user(self.storage, user_id, str(target.id), assigned_by)
        self.invalidate(user_id)
        if created:
            await publish_change(self.storage, self.clock, "role.grant", "user_role", user_id)
        return created

    async def revoke(self, user_id: str, role: str, *, by: Any = None) -> bool:
        """Take ``role`` from a stored user; False when they did not have it."""
        await self._fresh()
        target = self._role(role)
        check_can_assign(by, self.permissions_for_roles([role]), what=f"revoking role {role!r}")
        if role == ADMIN_ROLE and ADMIN_ROLE in await self.stored_roles(user_id):
            holders = await self.storage.read("user_roles", {"role_id": target.id})
            if len(holders) <= 1:
                raise ConflictError("refusing to revoke admin from the last admin")
        removed = await store.unlink_user(self.storage, user_id, str(target.id))
        self.invalidate(user_id)
        if removed:
            await publish_change(self.storage, self.clock, "role.revoke", "user_role", user_id)
        return removed

    async def create_role(
        self,
        name: str,
        permissions: Iterable[str],
        inherits: Iterable[str] = (),
        description: str | None = None,
        *,
        by: Any = None,
    ) -> Role:
        await self._fresh()
        perms, parents = frozenset(permissions), tuple(dict.fromkeys(inherits))
        if not is_role_name(name):
            raise ValidationError(ROLE_NAME_RULE)
        if name in self._snap.roles:
            raise ConflictError(f"role {name!r} already exists")
        for p in perms:
            if not isinstance(p, str) or not is_permission_name(p):
                raise ValidationError(f"not a permission name: {p!r}")
            if p not in self._snap.permissions and by is not None:
                raise ValidationError(f"unknown permission {p!r} (declare new ones in rbac.roles config)")
        for parent in parents:
            if parent not in self._snap.roles:
                raise ValidationError(f"cannot inherit from unknown role {parent!r}")
        effective = perms | self.permissions_for_roles(parents)
        check_can_assign(by, effective, what=f"creating role {name!r}")
        role = Role(name, perms, parents, description)
        await store.write_role(self.storage, role)
        self.invalidate()
        await publish_change(self.storage, self.clock, "role.create", "role", name)
        await self._fresh()
        return self._role(name)

    async def delete_role(self, name: str, *, by: Any = None) -> bool:
        await self._fresh()
        role = self._snap.roles.get(name)
        if role is None or role.id is None:
            return False
        if role.builtin:
            raise ConflictError(f"role {name!r} comes from the seed or the config and cannot be deleted")
        if any(name in r.inherits for r in self._snap.roles.values()):
            raise ConflictError(f"role {name!r} is inherited by another role")
        check_can_assign(by, self.permissions_for_roles([name]), what=f"deleting role {name!r}")
        await store.delete_role(self.storage, role.id)
        self.invalidate()
        await publish_change(self.storage, self.clock, "role.delete", "role", name)
        return True


async def _require_user(storage: BaseStorage, user_id: str) -> Mapping[str, Any]:
    rows = await storage.read("users", {"id": user_id}, limit=1) if is_uuid(user_id) else []
    if not rows:
        raise NotFoundError("no such user")
    return rows[0]


def get_rbac(services: Services) -> RBACEngine:
    """The stack's engine: ``services.rbac`` (seeded and loaded at startup)."""
    return services.rbac
