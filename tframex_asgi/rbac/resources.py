"""The seed's Resource Guard: per-agent, per-tool and per-flow permissions (``rbac.resources``).

Route rules decide who may call ``POST /agents/{name}/run``, but an agent also runs as
``model=<agent>`` on ``/v1/chat/completions``, as a flow step and as a tool of another agent. So
the guard is asked by the engine (``tframex_asgi.endpoint.engine``) each time an agent, tool or
flow is about to run, with the caller's permissions carried in the run's ``RunInfo``: whichever
route started the run, and however deep the call, a named resource needs its permission.

A resource without a rule (and without a ``"*"`` rule of its kind) needs only what its route
needs. With ``security`` or ``rbac`` off there is no guard at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal

from tframex_asgi.errors import AuthorizationError

if TYPE_CHECKING:
    from tframex_asgi.config import EnterpriseConfig
    from tframex_asgi.config.security import ResourcesConfig

__all__ = ["ResourceGuard", "ResourceKind", "rbac_enforced"]

ResourceKind = Literal["agent", "tool", "flow"]
WILDCARD = "*"


def rbac_enforced(config: EnterpriseConfig) -> bool:
    """Permissions are checked at all (security and RBAC both on)."""
    return config.security.enabled and config.security.rbac.enabled


class ResourceGuard:
    """``check(kind, name, permissions)`` raises :class:`AuthorizationError` (403) when the
    resource's rule names a permission the caller does not hold; ``allows`` answers the same
    without raising (for listings such as ``GET /v1/models``)."""

    def __init__(self, rules: ResourcesConfig) -> None:
        self._rules: dict[str, Mapping[str, str]] = {"agent": rules.agents, "tool": rules.tools, "flow": rules.flows}

    @classmethod
    def for_config(cls, config: EnterpriseConfig) -> ResourceGuard | None:
        """The guard of a stack, or None when no rule exists or permissions are not enforced."""
        rules = config.security.rbac.resources
        if not rbac_enforced(config) or not (rules.agents or rules.tools or rules.flows):
            return None
        return cls(rules)

    def required(self, kind: ResourceKind, name: str) -> str | None:
        rules = self._rules[kind]
        return rules.get(name) or rules.get(WILDCARD)

    def allows(self, kind: ResourceKind, name: str, permissions: Iterable[str] | None) -> bool:
        needed = self.required(kind, name)
        return needed is None or (permissions is not None and needed in permissions)

    def check(self, kind: ResourceKind, name: str, permissions: Iterable[str] | None) -> None:
        needed = self.required(kind, name)
        if needed is not None and (permissions is None or needed not in permissions):
            raise AuthorizationError(f"missing permission {needed} to run {kind} {name!r}")
