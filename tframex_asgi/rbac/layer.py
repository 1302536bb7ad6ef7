"""The authorization layer: deny by default, one permission per (method, route template).

Runs after authentication, so ``scope["auth"].scopes`` already holds the caller's permissions
(narrowed by API-key or token scopes). Decisions, in order:

1. a path that :func:`tframex_asgi.paths.normalize_path` cannot read one way only: 400 ``bad_path``;
2. a method-override header naming another method: 403 (frameworks that honour it would run a
   handler we did not authorize);
3. no rule for (method, path): 403 ``unmapped_route``. That covers OPTIONS, TRACE, lower-case
   and unknown methods: only HEAD borrows GET's rule;
4. a ``public`` rule passes; otherwise no identity: 401, missing permission: 403 ``forbidden``
   (an ``@authenticated`` rule, learned from an in-app guard with several permissions, needs an
   identity only: the guard checks the permissions).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from tframex_asgi.catalog.routes import DEFAULT_PUBLIC_PATHS, PUBLIC, merge_rules
from tframex_asgi.config.model import authorization_rules
from tframex_asgi.context import get_state
from tframex_asgi.http import send_json_error
from tframex_asgi.paths import MATCH_KEY, RouteTable, normalize_path
from tframex_asgi.rbac.discover import AUTHENTICATED
from tframex_asgi.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from tframex_asgi.config import EnterpriseConfig
    from tframex_asgi.config.security import AuthProvidersConfig

__all__ = ["AuthorizationMiddleware", "build_route_table", "challenge_for", "config_route_table"]

logger = logging.getLogger("tframex_asgi.rbac")
_OVERRIDE_HEADERS = frozenset({b"x-http-method-override", b"x-http-method", b"x-method-override"})
# lower() keeps the length: headers of another length are skipped without lowering them.
_OVERRIDE_LENGTHS = frozenset(len(h) for h in _OVERRIDE_HEADERS)
UNMATCHED = "<unmatched>"


def build_route_table(
    routes: Mapping[str, str] | None = None, *, public_paths: Iterable[str] = (), endpoint_routes: bool = True
) -> RouteTable[str]:
    """The endpoint's rules, then ``public_paths`` (GET/HEAD), then ``routes`` (later ones win)."""
    return RouteTable(merge_rules(routes, public_paths=public_paths, endpoint_routes=endpoint_routes))


def config_route_table(config: EnterpriseConfig, guarded: Mapping[str, str] | None = None) -> RouteTable[str]:
    """The route table the layer serves for ``config``: see
    :func:`~tframex_asgi.config.model.authorization_rules`. The config compiled its own rules when
    it was constructed; only a clash with a ``guarded`` rule can still raise here."""
    return RouteTable(authorization_rules(config, guarded))


class AuthorizationMiddleware:
    """Pure ASGI authorization by route table. Works alone behind any layer (Starlette's own
    ``AuthenticationMiddleware`` included) that sets ``scope["user"]`` and ``scope["auth"]``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Mapping[str, str] | RouteTable[str] | None = None,
        public_paths: Iterable[str] = DEFAULT_PUBLIC_PATHS,
        endpoint_routes: bool = True,
        challenge: str = "ApiKey",
    ) -> None:
        self.app = app
        if isinstance(routes, RouteTable):
            self.table = routes
        else:
            self.table = build_route_table(routes or {}, public_paths=public_paths, endpoint_routes=endpoint_routes)
        if not challenge.isascii():
            raise ValueError("challenge must be ASCII")
        self.challenge = challenge.encode("ascii")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        state = scope.get("tframex")
        if state is None:
            state = get_state(scope)
        # A websocket handshake is authorized by explicit "WEBSOCKET /path" rules only.
        method = scope.get("method", "") if kind == "http" else "WEBSOCKET"
        early = state.get(MATCH_KEY)  # the context layer matched this table already
        if early is None or early[0] is not self.table or early[1] is not scope.get("path"):
            early = None
        # computed once per request, shared with audit and rate limit
        path = early[2] if early is not None else normalize_path(scope)
        if path is None:
            state["route"] = UNMATCHED
            await self._deny(scope, send, 400, "bad_path", "bad_path", "the request path is malformed")
            return
        for name, value in scope.get("headers", ()):
            if (
                len(name) in _OVERRIDE_LENGTHS
                and name.lower() in _OVERRIDE_HEADERS
                and value.strip().upper() != method.encode("latin-1")
            ):
                state["route"] = UNMATCHED
                await self._deny(scope, send, 403, "forbidden", "forbidden", "method override headers are refused")
                return
        found = early[3] if early is not None else self.table.match(method, path)
        if found is None:
            state["route"] = UNMATCHED
            await self._deny(scope, send, 403, "forbidden", "unmapped_route", "no permission grants this route")
            return
        template, permission = found
        state["route"] = template
        state["permission"] = permission
        if permission != PUBLIC:
            user = scope.get("user")
            if user is None or not getattr(user, "is_authenticated", False):
                await self._deny(scope, send, 401, "unauthenticated", "missing_credentials", "authentication required")
                return
            if permission != AUTHENTICATED and permission not in getattr(scope.get("auth"), "scopes", ()):
                await self._deny(scope, send, 403, "forbidden", "forbidden", f"missing permission {permission}")
                return
        await self.app(scope, receive, send)

    async def _deny(self, scope: Scope, send: Send, status: int, code: str, reason: str, message: str) -> None:
        get_state(scope)["audit_reason"] = reason
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
            return
        headers = [(b"www-authenticate", self.challenge)] if status == 401 else []
        await send_json_error(send, status, code, message, headers)


def challenge_for(providers: AuthProvidersConfig) -> str:
    """The ``WWW-Authenticate`` challenge of a 401 for the enabled providers."""
    enabled = providers.enabled_in_order
    parts = []
    if "api_key" in enabled:
        parts.append(f'ApiKey header="{providers.api_key.header_name}"')
    if "basic" in enabled:
        parts.append(f'Basic realm="{providers.basic.realm}"')
    if "jwt" in enabled or "oauth2" in enabled:
        parts.append("Bearer")
    return ", ".join(parts) or "ApiKey"
