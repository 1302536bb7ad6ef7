"""The audit layer: one record per request, written after the response, off the request path.

It sits outside authentication, rate limiting and authorization, so it sees their 401/403/429
responses and reads ``state["audit_reason"]`` and ``state["principal"]`` once the inner layers
have run. It never reads or buffers the request body or the response body: it only watches
``http.response.start`` for the status.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tframex_asgi.audit.logger import AuditLogger, get_audit
from tframex_asgi.audit.records import SECURITY_STATUSES
from tframex_asgi.audit.routes import audit_routes
from tframex_asgi.clock import Clock, SystemClock
from tframex_asgi.context import get_state
from tframex_asgi.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AuditMiddleware", "build_layer"]

# Recorded when the client went away (or the server cancelled the task) before a response started.
CLIENT_CLOSED = 499


def _path_of(scope: Scope) -> str:
    try:
        from tframex_asgi.paths import normalize_path
    except ImportError:  # pragma: no cover - paths ships with rbac
        return str(scope.get("path", ""))
    normal = normalize_path(scope)
    # A malformed path is recorded as sent (escaped by the logger): that is the evidence.
    return normal if normal is not None else str(scope.get("path", ""))


class AuditMiddleware:
    """Pure ASGI middleware recording each HTTP request through an :class:`AuditLogger`."""

    def __init__(self, app: ASGIApp, audit: AuditLogger, *, clock: Clock | None = None) -> None:
        if not callable(getattr(audit, "log_request", None)):
            raise TypeError("audit must be an AuditLogger")
        self.app = app
        self.audit = audit
        self.clock: Clock = clock or SystemClock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.clock.monotonic()
        state = get_state(scope)
        status: int | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        failure: str | None = None
        try:
            await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:
            failure = "cancelled"
            raise
        except BaseException:
            failure = "internal_error"
            raise
        finally:
            reason: Any = state.get("audit_reason") or failure
            final = status
            if final is None:
                # The outer context layer turns an exception into a 500; no response at all is a 500 too.
                final = CLIENT_CLOSED if failure == "cancelled" else 500
                reason = reason or "no_response"
            reason = None if reason is None else str(reason)
            # Checked first so the security level pays almost nothing for the requests it skips.
            if self.audit.wants(final, reason or SECURITY_STATUSES.get(final)):
                route = state.get("route")
                self.audit.log_request(
                    scope,
                    status=final,
                    duration_ms=int((self.clock.monotonic() - started) * 1000),
                    reason=reason,
                    route=None if route is None else str(route),
                    path=_path_of(scope),
                )


def build_layer(app: ASGIApp, services: Any) -> ASGIApp | None:
    """The stack's builder: the logger from :func:`get_audit`, plus ``GET /audit``."""
    if services.config.security.audit.level == "off":
        return None
    audit = get_audit(services)
    services.extras.setdefault("routes", []).extend(audit_routes(services))
    return AuditMiddleware(app, audit, clock=services.clock)
