"""The seed's permissions, default roles and the endpoint's route table, under their old name.

They live in :mod:`tframex_asgi.catalog` (the bottom floor, so the config can validate against
them); this module keeps ``tframex_asgi.rbac.permissions`` imports working.
"""

from __future__ import annotations

from tframex_asgi.catalog.permissions import (
    ADMIN_ROLE,
    DEFAULT_ROLES,
    PERMISSIONS,
    is_permission_name,
    split_permission,
)
from tframex_asgi.catalog.routes import ENDPOINT_ROUTES, PUBLIC

__all__ = [
    "ADMIN_ROLE",
    "DEFAULT_ROLES",
    "ENDPOINT_ROUTES",
    "PERMISSIONS",
    "PUBLIC",
    "is_permission_name",
    "split_permission",
]
