"""The package's fixed tables, on the bottom floor: the config validates against them and the
features that serve them import them, so both read one definition.

* :mod:`~tframex_asgi.catalog.permissions`: the seed's permissions, default roles, the role and
  permission name rules;
* :mod:`~tframex_asgi.catalog.routes`: the endpoint's route -> permission table, the default
  public paths and the ``"METHOD /template"`` rule grammar;
* :mod:`~tframex_asgi.catalog.retention`: the tables that age out and their age columns.
"""

from tframex_asgi.catalog.permissions import (
    ADMIN_ROLE,
    DEFAULT_ROLES,
    PERMISSIONS,
    ROLE_NAME,
    ROLE_NAME_RULE,
    is_permission_name,
    is_role_name,
    split_permission,
)
from tframex_asgi.catalog.retention import AGE_COLUMNS
from tframex_asgi.catalog.routes import DEFAULT_PUBLIC_PATHS, ENDPOINT_ROUTES, PUBLIC

__all__ = [
    "ADMIN_ROLE",
    "AGE_COLUMNS",
    "DEFAULT_PUBLIC_PATHS",
    "DEFAULT_ROLES",
    "ENDPOINT_ROUTES",
    "PERMISSIONS",
    "PUBLIC",
    "ROLE_NAME",
    "ROLE_NAME_RULE",
    "is_permission_name",
    "is_role_name",
    "split_permission",
]
