"""The audit layer: one record per request, written after the response, off the request path.

It sits outside authentication, rate limiting and authorization, so it sees their 401/403/429
responses and reads ``state["audit_reason"]`` and ``state["principal"]`` once the inner layers
have run. It never reads or buffers the request body or the response body: it only watches
``http.response.start`` for the status.

Per request it decides from the status and reason whether the level records it (at level
``security`` a request that is not a refusal costs that check and nothing else) and, if so,
captures a tuple of references (:func:`~tframex_asgi.audit.records.capture_request`); the
logger builds, redacts, signs and submits the rows off the request path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tframex_asgi.audit.journal import AuditJournal
from tframex_asgi.audit.logger import AuditLogger
from tframex_asgi.audit.records import OPERATIONAL_REASONS, SECURITY_STATUSES, capture_request
from tframex_asgi.clock import Clock, SystemClock
from tframex_asgi.context import get_state
from tframex_asgi.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AuditMiddleware"]

logger = logging.getLogger("tframex_asgi.audit")

# Recorded when the client went away (or the server cancelled the task) before a response started.
CLIENT_CLOSED = 499
# The messages that can end a response's body (the last has no more_body): the plain one and the
# zero-copy / path-send extensions a server may offer.
_BODY_MESSAGES = frozenset({"http.response.body", "http.response.zerocopysend", "http.response.pathsend"})


class AuditMiddleware:
    """Pure ASGI middleware recording each HTTP request through an :class:`AuditLogger`."""

    def __init__(
        self, app: ASGIApp, audit: AuditLogger, *, clock: Clock | None = None, journal: AuditJournal | None = None
    ) -> None:
        if not callable(getattr(audit, "log_request", None)) or not callable(getattr(audit, "record", None)):
            raise TypeError("audit must be an AuditLogger")
        if journal is not None and audit.sink is not journal:
            raise TypeError("a durable audit layer needs the logger to write through its journal")
        self.app = app
        self.audit = audit
        self.clock: Clock = clock or SystemClock()
        # Durable mode: the last message of each recorded response waits for its row's fsync.
        self.journal = journal
        level = getattr(getattr(audit, "config", None), "level", None)
        # What AuditLogger.wants() decides, resolved once: every request, refusals only, or none.
        self._every = level == "full"
        self._refusals = level in ("full", "security")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        clock = self.clock
        started = clock.monotonic()
        state = get_state(scope)
        status: int | None = None
        recorded = False
        journal = self.journal

        async def send_wrapper(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif (
                journal is not None
                and status is not None
                and message["type"] in _BODY_MESSAGES
                and not message.get("more_body", False)
            ):
                # Record now, build the row now (not in a later loop callback), and answer only
                # once it is fsynced: an answered request always has its row.
                recorded = True
                if self._record(scope, state, started, status, state.get("audit_reason")):
                    self.audit.drain()
                    await journal.synced()
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
            if not recorded:
                reason: Any = state.get("audit_reason") or failure
                final = status
                if final is None:
                    # The outer context layer turns an exception into a 500; no response at all is a 500 too.
                    final = CLIENT_CLOSED if failure == "cancelled" else 500
                    reason = reason or "no_response"
                self._record(scope, state, started, final, reason)

    def _record(self, scope: Scope, state: dict[str, Any], started: float, final: int, reason: Any) -> bool:
        """Capture the request when the level records it; whether it did."""
        if reason is not None:
            reason = str(reason)
        # The level's decision first, so the security level pays almost nothing for the
        # requests it skips (AuditLogger.wants, inlined).
        if not (
            self._every
            or (self._refusals and (final in SECURITY_STATUSES or (bool(reason) and reason not in OPERATIONAL_REASONS)))
        ):
            return False
        audit = self.audit
        try:
            duration_ms = int((self.clock.monotonic() - started) * 1000)
            # Wall time from the logger's clock, as its other rows.
            created = audit.clock.time()
            audit.record(capture_request(scope, state, created, final, duration_ms, reason, state.get("route"), None))
        except Exception:  # never break the request being recorded
            logger.exception("could not record a request")
            return False
        return True
