"""The seed's permissions and default roles, and the endpoint's route -> permission table.

Kept free of imports from the rest of the package so the config module can validate custom
roles and route rules against it without an import cycle.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

__all__ = [
    "ADMIN_ROLE",
    "DEFAULT_ROLES",
    "ENDPOINT_ROUTES",
    "PERMISSIONS",
    "PUBLIC",
    "is_permission_name",
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

# Route rule value meaning "no permission needed" (authentication still decides who gets in).
PUBLIC: Final = "public"

# DESIGN.md "HTTP routes of the endpoint". HEAD is matched through GET by the route table.
ENDPOINT_ROUTES: Final = MappingProxyType(
    {
        "GET /healthz": PUBLIC,
        "GET /readyz": PUBLIC,
        "GET /agents": "agent.view",
        "POST /agents/{name}/run": "agent.execute",
        "GET /tools": "tool.view",
        "POST /tools/{name}/call": "tool.call",
        "GET /flows": "flow.view",
        "POST /flows/{name}/run": "flow.execute",
        "GET /conversations": "data.read",
        "GET /conversations/{id}": "data.read",
        "DELETE /conversations/{id}": "data.delete",
        "POST /v1/chat/completions": "agent.execute",
        "POST /v1/responses": "agent.execute",
        "GET /v1/models": "agent.execute",
        "GET /v1/models/{id}": "agent.execute",
        "GET /metrics": "metrics.view",
        "GET /audit": "audit.view",
        # Admin API (tframex_asgi.admin.routes).
        "GET /admin/users": "user.manage",
        "POST /admin/users": "user.manage",
        "GET /admin/users/{id}": "user.manage",
        "PATCH /admin/users/{id}": "user.manage",
        "GET /admin/users/{id}/roles": "user.manage",
        "POST /admin/users/{id}/roles": "role.manage",
        "DELETE /admin/users/{id}/roles/{role}": "role.manage",
        "GET /admin/roles": "role.manage",
        "POST /admin/roles": "role.manage",
        "DELETE /admin/roles/{name}": "role.manage",
        "GET /admin/api-keys": "user.manage",
        "POST /admin/api-keys": "user.manage",
        "DELETE /admin/api-keys/{id}": "user.manage",
    }
)


def split_permission(name: str) -> tuple[str, str]:
    """``"agent.execute"`` -> ``("agent", "execute")`` (the permissions table's resource/action)."""
    resource, _, action = name.partition(".")
    return resource, action


def is_permission_name(name: str) -> bool:
    """``resource.action`` of lowercase letters, digits, ``_`` and ``-`` (custom permissions allowed)."""
    resource, dot, action = name.partition(".")
    ok = set("abcdefghijklmnopqrstuvwxyz0123456789_-")
    return bool(dot and resource and action and set(resource) <= ok and set(action) <= ok) and len(name) <= 100
