"""Permission checks inside an app: a Starlette endpoint decorator, a FastAPI dependency, and
the resource-level ownership rule (own rows only unless ``system.admin``).

They read ``scope["auth"].scopes`` as set by the authentication layer (or by Starlette's own
``AuthenticationMiddleware``), so they work with or without the rest of the stack.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast

from starlette.exceptions import HTTPException, WebSocketException
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response

from tframex_asgi.auth.principal import subject_of
from tframex_asgi.context import get_state
from tframex_asgi.types import Scope

__all__ = ["ADMIN_PERMISSION", "RequirePermission", "granted", "missing_permissions", "owns", "require_permission"]

ADMIN_PERMISSION = "system.admin"
F = TypeVar("F", bound=Callable[..., Any])


def granted(scope: Scope) -> frozenset[str]:
    """The caller's permissions (empty when unauthenticated)."""
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return frozenset()
    return frozenset(getattr(scope.get("auth"), "scopes", ()))


def missing_permissions(scope: Scope, permissions: Iterable[str], *, any_of: bool = False) -> list[str]:
    """What the caller lacks: empty when allowed (``any_of``: one of ``permissions`` suffices)."""
    have = granted(scope)
    wanted = list(permissions)
    if any_of:
        return [] if any(p in have for p in wanted) else wanted
    return [p for p in wanted if p not in have]


def owns(scope: Scope, owner_id: str | None) -> bool:
    """Resource-level rule: the caller owns the row, or holds ``system.admin``.

    A row without an owner is visible to admins only (unowned data is not everyone's).
    """
    if ADMIN_PERMISSION in granted(scope):
        return True
    me = subject_of(scope.get("user"))  # namespaced: a token's sub never passes for a stored user
    return me is not None and owner_id is not None and str(owner_id) == me


def _denial(scope: Scope, missing: list[str]) -> tuple[int, str, str]:
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return 401, "unauthenticated", "authentication required"
    get_state(scope)["audit_reason"] = "forbidden"
    return 403, "forbidden", f"missing permission {' or '.join(missing)}"


def require_permission(*permissions: str, any_of: bool = False) -> Callable[[F], F]:
    """Decorator for Starlette endpoints (``async def endpoint(request)``, or any function with a
    ``request``/``websocket`` parameter, as ``starlette.authentication.requires``): answers
    401/403 with the package's JSON error instead of running the endpoint."""
    if not permissions:
        raise ValueError("require_permission needs at least one permission")

    def decorate(func: F) -> F:
        params = list(inspect.signature(func).parameters)
        index = next((i for i, name in enumerate(params) if name in ("request", "websocket")), 0)

        def connection(args: tuple[Any, ...], kwargs: dict[str, Any]) -> HTTPConnection:
            conn = kwargs.get(params[index]) if params and params[index] in kwargs else args[index]
            if not isinstance(conn, HTTPConnection):
                raise TypeError(f"{func.__qualname__}: no request argument to check permissions on")
            return conn

        def refusal(conn: HTTPConnection) -> Response | None:
            missing = missing_permissions(conn.scope, permissions, any_of=any_of)
            if not missing:
                return None
            status, code, message = _denial(conn.scope, missing)
            return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                conn = connection(args, kwargs)
                denied = refusal(conn)
                if denied is not None:
                    if conn.scope["type"] == "websocket":
                        await conn.close(code=1008)  # type: ignore[attr-defined]
                        return None
                    return denied
                return await cast(Callable[..., Awaitable[Any]], func)(*args, **kwargs)

            # Read by tframex_asgi.rbac.discover: the route needs no rbac.routes entry of its own.
            async_wrapper.__tframex_permissions__ = (tuple(permissions), any_of)  # type: ignore[attr-defined]
            return cast(F, async_wrapper)

        @functools.wraps(func)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            denied = refusal(connection(args, kwargs))
            return denied if denied is not None else func(*args, **kwargs)

        sync_wrapper.__tframex_permissions__ = (tuple(permissions), any_of)  # type: ignore[attr-defined]
        return cast(F, sync_wrapper)

    return decorate


class RequirePermission:
    """FastAPI dependency: ``Depends(RequirePermission("agent.execute"))`` (or in a router's
    ``dependencies=[...]``), on HTTP and WebSocket routes. Raises ``HTTPException`` 401/403
    (a WebSocket is closed with 1008 instead); returns the caller's user. The stack learns the
    guarded routes (tframex_asgi.rbac.discover): no ``rbac.routes`` entry is needed for them."""

    def __init__(self, *permissions: str, any_of: bool = False) -> None:
        if not permissions:
            raise ValueError("RequirePermission needs at least one permission")
        self.permissions = permissions
        self.any_of = any_of

    # HTTPConnection, not Request: FastAPI injects it on WebSocket routes too (a Request
    # parameter there is a TypeError, i.e. a 500).
    async def __call__(self, connection: HTTPConnection) -> Any:
        scope = connection.scope
        missing = missing_permissions(scope, self.permissions, any_of=self.any_of)
        if missing:
            status, _, message = _denial(scope, missing)
            if scope["type"] == "websocket":
                raise WebSocketException(code=1008, reason=message)
            raise HTTPException(status, message, headers={"WWW-Authenticate": "ApiKey"} if status == 401 else None)
        return scope.get("user")
