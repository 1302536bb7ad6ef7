"""Reading and writing the RBAC tables through :class:`BaseStorage` (equality filters only).

``role_permissions`` and ``user_roles`` have two-column primary keys: the storage layer
addresses such a row as ``"<first>:<second>"`` in ``delete``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tframex_asgi.catalog.permissions import split_permission
from tframex_asgi.errors import ConflictError

if TYPE_CHECKING:
    from tframex_asgi.storage.base import BaseStorage

__all__ = ["INHERIT_PREFIX", "Role", "delete_role", "link_user", "load", "seed", "unlink_user", "write_role"]

INHERIT_PREFIX = "@role:"


@dataclass(frozen=True, slots=True)
class Role:
    """A role as the engine holds it and these functions store it."""

    name: str
    permissions: frozenset[str]  # granted directly
    inherits: tuple[str, ...] = ()
    description: str | None = None
    builtin: bool = False  # a seed or config role: not deletable, resynced at every start
    id: str | None = None


async def _ensure(storage: BaseStorage, table: str, key: Mapping[str, Any], extra: Mapping[str, Any]) -> str:
    """The id of the row matching ``key``, inserted with ``extra`` when missing.

    Another process may insert the same row between our read and write: its unique constraint
    turns our write into a ConflictError, after which its row is read back.
    """
    rows = await storage.read(table, key, limit=1)
    if rows:
        return str(rows[0]["id"])
    try:
        return await storage.write(table, {**key, **extra})
    except ConflictError:
        rows = await storage.read(table, key, limit=1)
        if not rows:
            raise
        return str(rows[0]["id"])


async def _permission_ids(storage: BaseStorage, names: Iterable[str], described: Mapping[str, str]) -> dict[str, str]:
    known = {r["name"]: str(r["id"]) for r in await storage.read("permissions")}
    for name in names:
        if name not in known:
            text: str | None
            if name.startswith(INHERIT_PREFIX):
                resource, action, text = "role", "inherit", f"inherits {name[len(INHERIT_PREFIX) :]}"
            else:
                (resource, action), text = split_permission(name), described.get(name) or None
            known[name] = await _ensure(
                storage, "permissions", {"name": name}, {"resource": resource, "action": action, "description": text}
            )
    return known


async def _sync_links(storage: BaseStorage, role_id: str, wanted: set[str]) -> None:
    current = {str(r["permission_id"]) for r in await storage.read("role_permissions", {"role_id": role_id})}
    for pid in wanted - current:
        with contextlib.suppress(ConflictError):  # another process linked it first
            await storage.write("role_permissions", {"role_id": role_id, "permission_id": pid})
    for pid in current - wanted:
        await storage.delete("role_permissions", f"{role_id}:{pid}")


def _edges(role: Role) -> set[str]:
    return set(role.permissions) | {INHERIT_PREFIX + p for p in role.inherits}


async def seed(storage: BaseStorage, permissions: Mapping[str, str], roles: Mapping[str, Role]) -> None:
    """Permissions and declared roles in storage; a declared role's grants are set exactly."""
    names = set(permissions) | {e for r in roles.values() for e in _edges(r)}
    ids = await _permission_ids(storage, sorted(names), permissions)
    for role in roles.values():
        role_id = await _ensure(storage, "roles", {"name": role.name}, {"description": role.description})
        await _sync_links(storage, role_id, {ids[e] for e in _edges(role)})


async def load(storage: BaseStorage, builtin: frozenset[str]) -> tuple[dict[str, Role], dict[str, str], frozenset[str]]:
    """``(roles by name, role name by id, every real permission)`` as stored."""
    perm_by_id = {str(r["id"]): str(r["name"]) for r in await storage.read("permissions")}
    role_rows = await storage.read("roles")
    direct: dict[str, set[str]] = {str(r["id"]): set() for r in role_rows}
    parents: dict[str, list[str]] = {str(r["id"]): [] for r in role_rows}
    for link in await storage.read("role_permissions"):
        rid, name = str(link["role_id"]), perm_by_id.get(str(link["permission_id"]))
        if rid not in direct or name is None:
            continue
        if name.startswith(INHERIT_PREFIX):
            parents[rid].append(name[len(INHERIT_PREFIX) :])
        else:
            direct[rid].add(name)
    roles: dict[str, Role] = {}
    for r in role_rows:
        rid, name = str(r["id"]), str(r["name"])
        roles[name] = Role(name, frozenset(direct[rid]), tuple(sorted(parents[rid])), r.get("description"),
                           name in builtin, rid)  # fmt: skip
    real = frozenset(n for n in perm_by_id.values() if not n.startswith(INHERIT_PREFIX))
    return roles, {str(r["id"]): str(r["name"]) for r in role_rows}, real


async def link_user(storage: BaseStorage, user_id: str, role_id: str, assigned_by: str | None) -> bool:
    if await storage.read("user_roles", {"user_id": user_id, "role_id": role_id}, limit=1):
        return False
    if assigned_by is not None and not await storage.count("users", {"id": assigned_by}):
        assigned_by = None  # the assigner has no users row (say, a token identity): record no one
    try:
        await storage.write("user_roles", {"user_id": user_id, "role_id": role_id, "assigned_by": assigned_by})
    except ConflictError:
        # Only a concurrent identical grant is "already there"; anything else (a foreign key) is an error.
        if await storage.read("user_roles", {"user_id": user_id, "role_id": role_id}, limit=1):
            return False
        raise
    return True


async def unlink_user(storage: BaseStorage, user_id: str, role_id: str) -> bool:
    return await storage.delete("user_roles", f"{user_id}:{role_id}")


async def write_role(storage: BaseStorage, role: Role) -> str:
    ids = await _permission_ids(storage, sorted(_edges(role)), {})
    try:
        role_id = await storage.write("roles", {"name": role.name, "description": role.description})
    except ConflictError:
        raise ConflictError(f"role {role.name!r} already exists") from None
    await _sync_links(storage, role_id, {ids[e] for e in _edges(role)})
    return role_id


async def delete_role(storage: BaseStorage, role_id: str) -> None:
    # Explicit deletes instead of relying on ON DELETE CASCADE: the memory backend has no FKs.
    for link in await storage.read("role_permissions", {"role_id": role_id}):
        await storage.delete("role_permissions", f"{role_id}:{link['permission_id']}")
    for grant in await storage.read("user_roles", {"role_id": role_id}):
        await storage.delete("user_roles", f"{grant['user_id']}:{role_id}")
    await storage.delete("roles", role_id)
