"""The ``security.rbac`` section: roles, resources and the route-to-permission table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from tframex_asgi.catalog.permissions import DEFAULT_ROLES, ROLE_NAME_RULE, is_permission_name, is_role_name
from tframex_asgi.catalog.routes import PUBLIC
from tframex_asgi.config._parse import Section, enabled_shorthand
from tframex_asgi.config.ratelimit import _check_routes
from tframex_asgi.errors import ConfigError

__all__ = ["RBACConfig", "ResourcesConfig", "RoleConfig"]


@dataclass(frozen=True)
class RoleConfig(Section):
    _path: ClassVar[str] = "enterprise.security.rbac.roles[]"

    # Permissions the role grants, as resource.action names (agent.execute); a name no role had
    # before declares a custom permission.
    permissions: tuple[str, ...] = ()
    # Roles (the seed's or configured ones) whose permissions this role has too; cycles are refused.
    inherits: tuple[str, ...] = ()
    # Free text shown in role listings (GET /admin/roles).
    description: str = ""


@dataclass(frozen=True)
class ResourcesConfig(Section):
    _path: ClassVar[str] = "enterprise.security.rbac.resources"

    # Agent name -> permission needed to run it wherever it runs: its own route,
    # /v1/chat/completions with model=<agent>, a flow step, a call from another agent.
    # "*" applies to every agent not named. Checked in addition to the route's permission.
    agents: dict[str, str] = field(default_factory=dict)
    # Tool name -> permission needed to call it: POST /tools/{name}/call and calls an agent makes.
    tools: dict[str, str] = field(default_factory=dict)
    # Flow name -> permission needed to run it (its steps still need their agents' permissions).
    flows: dict[str, str] = field(default_factory=dict)

    def _check(self, path: str) -> None:
        for kind in ("agents", "tools", "flows"):
            for name, perm in getattr(self, kind).items():
                if not name:
                    raise ConfigError(f"{path}.{kind}", "a resource name must not be empty")
                if not is_permission_name(perm):
                    raise ConfigError(f"{path}.{kind}.{name}", f"not a permission name: {perm!r}")

    @property
    def permissions(self) -> frozenset[str]:
        """Every permission a resource rule names (declared, so ``admin`` holds them)."""
        return frozenset(p for kind in (self.agents, self.tools, self.flows) for p in kind.values())


@dataclass(frozen=True)
class RBACConfig(Section):
    _path: ClassVar[str] = "enterprise.security.rbac"

    # Check permissions: routes, rbac.resources and the admin API. false: no authorization layer, so
    # any authenticated caller reaches every route, and the admin API is not served.
    enabled: bool = True
    # Every stored user holds this role too (None: only what was granted).
    default_role: str | None = "user"
    # Seconds role tables and a user's grants are cached; changes made through the admin API or
    # CLI reach every process on the same database within 1 s anyway.
    cache_ttl: float = 60.0
    # Custom roles (merged over the seed's DEFAULT_ROLES; a seed role named here is replaced).
    roles: dict[str, RoleConfig] = field(default_factory=dict)
    # Extra "METHOD /template" -> permission (or "public") rules for routes of the wrapped app.
    routes: dict[str, str] = field(default_factory=dict)
    # Per-agent, per-tool and per-flow permissions, enforced where the run happens.
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    # Serve /admin/users, /admin/roles and /admin/api-keys from the TFrameX endpoint.
    admin_api: bool = True

    _shorthand = staticmethod(enabled_shorthand)

    def _check(self, path: str) -> None:
        if self.cache_ttl < 0:
            raise ConfigError(f"{path}.cache_ttl", "must be 0 or more")
        known_roles = set(DEFAULT_ROLES) | set(self.roles)
        if self.default_role is not None and self.default_role not in known_roles:
            raise ConfigError(f"{path}.default_role", f"unknown role {self.default_role!r}")
        for name, role in self.roles.items():
            if not is_role_name(name):
                raise ConfigError(f"{path}.roles.{name}", ROLE_NAME_RULE)
            for i, perm in enumerate(role.permissions):
                if not is_permission_name(perm):
                    raise ConfigError(f"{path}.roles.{name}.permissions[{i}]", f"not a permission name: {perm!r}")
            for i, parent in enumerate(role.inherits):
                if parent not in known_roles:
                    raise ConfigError(f"{path}.roles.{name}.inherits[{i}]", f"unknown role {parent!r}")
        for name in self.roles:  # inheritance must be a DAG: a cycle is a config mistake
            seen, todo = set(), list(self.roles[name].inherits)
            while todo:
                parent = todo.pop()
                if parent == name:
                    raise ConfigError(f"{path}.roles.{name}.inherits", "inheritance cycle")
                if parent not in seen and parent in self.roles:
                    seen.add(parent)
                    todo.extend(self.roles[parent].inherits)
        for rule, perm in self.routes.items():
            _check_routes([rule], f"{path}.routes.{rule}")  # method and template, as the layer reads them
            if perm != PUBLIC and not is_permission_name(perm):
                raise ConfigError(f"{path}.routes.{rule}", f"expected a permission name or {PUBLIC!r}, got {perm!r}")
