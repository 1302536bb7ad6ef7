"""Role-based access control: the engine, the authorization layer and route guards."""

from __future__ import annotations

from tframex_asgi.catalog.permissions import DEFAULT_ROLES, PERMISSIONS
from tframex_asgi.rbac.engine import RBACEngine, get_rbac
from tframex_asgi.rbac.guard import RequirePermission, owns, require_permission
from tframex_asgi.rbac.layer import AuthorizationMiddleware
from tframex_asgi.rbac.resource import CallerGuard
from tframex_asgi.rbac.resources import ResourceGuard

# The seed's name: its "Permission Manager" is the engine that resolves roles to permissions.
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
