"""Learn the app's guarded routes, so one declaration is enough.

A FastAPI route guarded by ``Depends(RequirePermission("report.view"))`` (on the route, its
router, or a dependency of a dependency) and a Starlette endpoint decorated with
``@require_permission(...)`` already say which permission they need. The authorization layer
is deny by default; without this it would refuse them as unmapped until the same permission was
repeated in ``rbac.routes``. The stack walks the wrapped app's routes when it is built and again
at startup (routers included after wrapping) and adds one rule per guarded route:

* one permission: the rule needs that permission (checked twice: by the layer, then the guard);
* several (all of them, or ``any_of``): the rule needs an authenticated caller and the guard
  decides, since a rule carries one permission.

Explicit ``rbac.routes`` entries win over learned ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from tframex_asgi.rbac.guard import RequirePermission

__all__ = ["AUTHENTICATED", "guarded_routes"]

logger = logging.getLogger("tframex_asgi.rbac")
# Rule value: any authenticated caller passes the layer; the route's own guard decides.
AUTHENTICATED = "@authenticated"
_MAX_DEPTH = 16


def _guard_permissions(obj: Any) -> tuple[tuple[str, ...], bool] | None:

    if isinstance(obj, RequirePermission):
        return tuple(obj.permissions), obj.any_of
    found = getattr(obj, "__tframex_permissions__", None)  # set by @require_permission
    if isinstance(found, tuple) and len(found) == 2:
        return found
    return None


def _dependant_guards(dependant: Any, depth: int = 0) -> Iterator[tuple[tuple[str, ...], bool]]:
    if dependant is None or depth > _MAX_DEPTH:
        return
    got = _guard_permissions(getattr(dependant, "call", None))
    if got is not None:
        yield got
    for sub in getattr(dependant, "dependencies", ()) or ():
        yield from _dependant_guards(sub, depth + 1)


def _rule_value(guards: list[tuple[tuple[str, ...], bool]]) -> str:
    required: set[str] = set()
    loose = False
    for perms, any_of in guards:
        if any_of and len(perms) > 1:
            loose = True
        else:
            required.update(perms)
    if len(required) == 1 and not loose:
        return next(iter(required))
    return AUTHENTICATED


def _join(prefix: str, path: str) -> str:
    return (prefix.rstrip("/") + path) if path.startswith("/") else prefix


def _walk_routes(routes: Any, prefix: str, depth: int) -> Iterator[tuple[str, str]]:
    if depth > _MAX_DEPTH or not isinstance(routes, list | tuple):
        return
    for route in routes:
        path = getattr(route, "path", None)
        effective = getattr(route, "effective_route_contexts", None)
        if path is None and callable(effective):
            # FastAPI >= 0.13x keeps an included router as one lazy route; its contexts carry
            # the full path, methods and dependant of each route inside.
            try:
                contexts = list(effective())
            except Exception:  # a private API: never let its changes break the stack
                logger.warning("could not list the routes of an included router; add rbac.routes rules for them")
                continue
            yield from _walk_routes(contexts, prefix, depth + 1)
            continue
        if not isinstance(path, str):
            continue
        full = _join(prefix, path)
        sub_routes = getattr(route, "routes", None)
        if sub_routes and not hasattr(route, "endpoint"):  # a Mount (or Host) of a router
            yield from _walk_routes(sub_routes, full, depth + 1)
            continue
        guards = list(_dependant_guards(getattr(route, "dependant", None)))
        endpoint_guard = _guard_permissions(getattr(route, "endpoint", None))
        if endpoint_guard is not None:
            guards.append(endpoint_guard)
        if not guards:
            continue
        value = _rule_value(guards)
        methods = getattr(route, "methods", None)
        if methods is None:  # a websocket route
            yield f"WEBSOCKET {full}", value
            continue
        for method in sorted(methods):
            if method != "HEAD":  # HEAD borrows GET's rule
                yield f"{method} {full}", value


def guarded_routes(app: Any) -> dict[str, str]:
    """``"METHOD /template" -> permission`` for every guarded route found inside ``app``
    (through middlewares' ``.app`` and routers' ``.routes``)."""
    rules: dict[str, str] = {}
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(app, 0)]
    while stack:
        obj, depth = stack.pop()
        if obj is None or id(obj) in seen or depth > _MAX_DEPTH or isinstance(obj, type):
            continue
        seen.add(id(obj))
        routes = getattr(obj, "routes", None)
        if isinstance(routes, list | tuple):
            rules.update(_walk_routes(routes, "", 0))
        for attr in ("app", "router", "_app", "asgi_app", "inner"):
            child = getattr(obj, attr, None)
            if child is not None:
                stack.append((child, depth + 1))
    return rules
