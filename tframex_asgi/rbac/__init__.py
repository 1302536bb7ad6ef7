"""Role-based access control: the engine, the authorization layer and route guards.

Imports are lazy so :mod:`tframex_asgi.config` can use :mod:`tframex_asgi.rbac.permissions`
without pulling in the engine (which imports the config).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tframex_asgi.rbac.permissions import DEFAULT_ROLES, PERMISSIONS

if TYPE_CHECKING:  # real types for checkers; lazy at run time
    from tframex_asgi.rbac.engine import RBACEngine, get_rbac
    from tframex_asgi.rbac.guard import RequirePermission, owns, require_permission
    from tframex_asgi.rbac.layer import AuthorizationMiddleware
    from tframex_asgi.rbac.resource import CallerGuard
    from tframex_asgi.rbac.resources import ResourceGuard

    PermissionManager = RBACEngine

__all__ = [
    "DEFAULT_ROLES",
    "PERMISSIONS",
    "AuthorizationMiddleware",
    "CallerGuard",
    "PermissionManager",
    "RBACEngine",
    "RequirePermission",
    "ResourceGuard",
    "get_rbac",
    "owns",
    "require_permission",
]

_LAZY = {
    "AuthorizationMiddleware": "tframex_asgi.rbac.layer",
    "RBACEngine": "tframex_asgi.rbac.engine",
    "CallerGuard": "tframex_asgi.rbac.resource",
    "ResourceGuard": "tframex_asgi.rbac.resources",
    "get_rbac": "tframex_asgi.rbac.engine",
    "RequirePermission": "tframex_asgi.rbac.guard",
    "require_permission": "tframex_asgi.rbac.guard",
    "owns": "tframex_asgi.rbac.guard",
}


# The seed's names: its "Permission Manager" is the engine that resolves roles to permissions.
_ALIASES = {"PermissionManager": "RBACEngine"}


def __getattr__(name: str) -> Any:
    name = _ALIASES.get(name, name)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
