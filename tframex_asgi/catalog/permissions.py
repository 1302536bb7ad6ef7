"""The seed's permissions and default roles, and what a role or permission name may look like.

The config validates custom roles against these, the RBAC engine seeds and checks them: one
definition for both.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any, Final

__all__ = [
    "ADMIN_ROLE",
    "DEFAULT_ROLES",
    "PERMISSIONS",
    "ROLE_NAME",
    "ROLE_NAME_RULE",
    "is_permission_name",
    "is_role_name",
    "split_permission",
]

PERMISSIONS: Final = MappingProxyType(
    {
        "agent.execute": "Execute agents",
        "agent.view": "View agent definitions",
        "agent.manage": "Create/modify agents",
        "tool.call": "Call tools",
        "tool.view": "View tool definitions",
        "tool.manage": "Create/modify tools",
        "flow.execute": "Execute flows",
        "flow.view": "View flow definitions",
        "flow.manage": "Create/modify flows",
        "data.read": "Read conversation data",
        "data.write": "Write conversation data",
        "data.delete": "Delete data",
        "user.manage": "Manage users",
        "role.manage": "Manage roles",
        "system.admin": "System administration",
        "metrics.view": "View metrics",
        "audit.view": "View audit logs",
    }
)

# The seed lists four permissions for admin; DESIGN.md says admin gets every permission, which
# the engine resolves at lookup time (so permissions added later are included too).
DEFAULT_ROLES: Final = MappingProxyType(
    {
        "user": ("agent.execute", "tool.call", "flow.execute", "data.read", "data.write"),
        "developer": ("agent.view", "tool.view", "flow.view", "metrics.view"),
        "admin": ("user.manage", "role.manage", "system.admin", "audit.view"),
        "operator": ("metrics.view", "system.admin"),
    }
)
ADMIN_ROLE: Final = "admin"

# A role name: 1-100 characters of a-z, 0-9, '_', '.', '-', starting with a letter.
ROLE_NAME: Final = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")
ROLE_NAME_RULE: Final = "a role name is 1-100 characters of a-z, 0-9, '_', '.', '-' starting with a letter"


def split_permission(name: str) -> tuple[str, str]:
    """``"agent.execute"`` -> ``("agent", "execute")`` (the permissions table's resource/action)."""
    resource, _, action = name.partition(".")
    return resource, action


def is_permission_name(name: str) -> bool:
    """``resource.action`` of lowercase letters, digits, ``_`` and ``-`` (custom permissions allowed)."""
    resource, dot, action = name.partition(".")
    ok = set("abcdefghijklmnopqrstuvwxyz0123456789_-")
    return bool(dot and resource and action and set(resource) <= ok and set(action) <= ok) and len(name) <= 100


def is_role_name(name: Any) -> bool:
    """``name`` matches :data:`ROLE_NAME`."""
    return isinstance(name, str) and ROLE_NAME.match(name) is not None
