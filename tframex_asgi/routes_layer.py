"""The stack's own routes (``/metrics``, ``/audit``, ``/admin/*``) served around any app.

Features register their Starlette routes in ``services.routes`` while the stack is
built; this layer sits innermost (inside authentication and authorization, so the same
permissions apply) and answers those paths itself, passing every other request to the user's
app untouched. The TFrameX endpoint also serves them, but a plain Starlette/FastAPI/Quart app
knows nothing of them, so without this layer ``GET /metrics`` would be the app's 404.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute, Match

from tframex_asgi.types import ASGIApp, Receive, Scope, Send

__all__ = ["OperationalRoutes"]


def _prefix(route: BaseRoute) -> str:
    """The literal start of a route's path (up to its first ``{param}``), for a cheap pre-check."""
    path = getattr(route, "path", "")
    return path.split("{", 1)[0] if isinstance(path, str) else ""


class OperationalRoutes:
    """Serve ``routes`` before ``app``.

    The routes are read on the first request, not at construction: layers built after this one
    (metrics, audit) add theirs to the same list later in the same build.
    """

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.source = routes
        self._routes: tuple[BaseRoute, ...] | None = None
        self._prefixes: tuple[str, ...] = ()

    def _load(self) -> tuple[BaseRoute, ...]:
        routes = tuple(self.source)
        self._prefixes = tuple({p for p in map(_prefix, routes) if p})
        self._routes = routes
        return routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        routes = self._routes if self._routes is not None else self._load()
        # Hot path: one startswith over a handful of prefixes for requests meant for the app.
        path = scope.get("path", "")
        if routes and isinstance(path, str) and path.startswith(self._prefixes):
            for route in routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    await route.handle(scope, receive, send)
                    return
        await self.app(scope, receive, send)
