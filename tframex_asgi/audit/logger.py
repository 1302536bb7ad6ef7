"""The audit logger: has rows built (:mod:`~tframex_asgi.audit.rows`), signs them into the hash
chain and hands them to the write queue.

Every method is synchronous and never blocks or raises into the caller: rows go to the storage
package's :class:`WriteQueue` (``submit``), which batches them off the request path, spills them
to disk during a database outage and flushes at shutdown.

Requests cost the request path one named tuple (:func:`~tframex_asgi.audit.records.capture_request`)
appended to a queue. Once :meth:`AuditLogger.start` has run (the stack calls it at startup), the
rows are built, redacted, signed and submitted by a callback the event loop runs right after the
requests that produced them (``loop.call_soon``), in capture order; before that, and from other
threads, they are built at once. :meth:`log_change`, :meth:`log_event`, :meth:`drain`,
:meth:`flush` and :meth:`close` first build every queued capture, so rows are signed (``seq`` and
hash) and submitted in the order they were recorded, which is also the order the queue writes
them in.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

from tframex_asgi.audit.chain import ChainSigner, request_parts
from tframex_asgi.audit.records import SECURITY_STATUSES, RequestCapture, capture_request, is_security, outcome
from tframex_asgi.audit.redact import Redactor
from tframex_asgi.audit.rows import RowBuilder, Shape, chain_end_row, utc_datetime
from tframex_asgi.clock import Clock, SystemClock
from tframex_asgi.config.audit import AuditConfig
from tframex_asgi.types import Scope

__all__ = ["SECURITY_STATUSES", "AuditLogger", "AuditSink", "get_audit", "outcome"]

logger = logging.getLogger("tframex_asgi.audit")

# One loop callback builds at most this many rows, then yields the loop to the requests, so a
# burst of captures never holds the loop for long.
_DRAIN_BATCH = 128


class AuditSink(Protocol):
    """What the logger needs from the storage package's WriteQueue."""

    def submit(self, table: str, row: dict[str, Any]) -> None: ...

    async def flush(self) -> None: ...


class AuditLogger:
    """Writes ``audit_logs`` (hash-chained) and ``events`` rows through ``sink``.

    ``level``: ``full`` records every request, ``security`` only rejections (and every
    :meth:`log_change` / :meth:`log_event`).
    """

    def __init__(self, sink: AuditSink, config: AuditConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or AuditConfig()
        self.sink = sink
        self.clock: Clock = clock or SystemClock()
        self.redactor = Redactor(self.config.redact_fields)
        self.rows = RowBuilder(self.redactor)
        key = self.config.hmac_key.encode() if self.config.hmac_key else None
        self.signer = ChainSigner(key) if self.config.hash_chain else None
        self.closed = False
        # Captures not yet turned into rows, oldest first. Appended without the lock (deque
        # appends are atomic); taken, built, signed and submitted only under it.
        self._pending: deque[RequestCapture] = deque()
        # Re-entrant: a sink or log handler that records again from inside a build must not deadlock.
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False

    @property
    def chain_id(self) -> str | None:
        return self.signer.chain_id if self.signer else None

    @property
    def pending(self) -> int:
        """Requests recorded whose rows are not built yet."""
        return len(self._pending)

    def _now(self) -> dt.datetime:
        return utc_datetime(self.clock.time())

    # -- signing and submitting (always under self._lock) --------------------------------------
    def _submit_audit(self, row: dict[str, Any], shape: Shape | None = None) -> None:
        if self.signer is not None:
            if self.closed:
                # The old chain is sealed: a late row (after shutdown began) starts a new, open chain.
                logger.warning("audit row %r after close: starting a new chain", row.get("action"))
                self.signer = ChainSigner(self.signer.key)
                self.closed = False
            if shape is None:
                self.signer.sign(row)
            else:
                if not shape.checked:  # the first row of this shape: its static canonical parts
                    shape.parts, shape.checked = request_parts(row), True
                self.signer.sign(row, shape.parts)
        if getattr(self.sink, "accepts_trusted", False):
            # A fresh dict of audit_logs columns only, never changed after this: the queue may
            # take it over without copying or re-checking its keys (see WriteQueue.submit).
            submit: Any = self.sink.submit
            submit("audit_logs", row, trusted=True)
        else:
            self.sink.submit("audit_logs", row)

    def _build_request(self, capture: RequestCapture) -> None:
        """The rows of one captured request: its audit row, and an event when it was refused."""
        row, shape = self.rows.request(capture)
        event = self.rows.refusal_event(row) if shape.state == "denied" and self.config.events_table else None
        self._submit_audit(row, shape)
        if event is not None:
            self.sink.submit("events", event)

    def _drain_locked(self, limit: int | None = None) -> int:
        pending = self._pending
        done = 0
        while pending and (limit is None or done < limit):
            capture = pending.popleft()
            done += 1
            try:
                self._build_request(capture)
            except Exception:
                # Auditing must never break the request it records; the failure itself is logged.
                logger.exception("could not build the audit record of a request")
        return done

    def _drain_soon(self) -> None:
        self._scheduled = False
        with self._lock:
            self._drain_locked(_DRAIN_BATCH)
        if self._pending and self._loop is not None and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._drain_soon, context=contextvars.Context())

    # -- public API ---------------------------------------------------------------------------
    def wants(self, status: int, reason: str | None) -> bool:
        """Whether a request that ended with ``status`` is recorded at this level."""
        if self.config.level == "full":
            return True
        return self.config.level == "security" and is_security(status, reason)

    def record(self, capture: RequestCapture) -> None:
        """Queue one request's capture: the request path's whole cost (O(1), never raises).

        Its rows are built by a loop callback once :meth:`start` has run, at once otherwise
        (and when called from another thread or event loop).
        """
        self._pending.append(capture)
        loop = self._loop
        if loop is not None:
            try:
                running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                if not self._scheduled:
                    self._scheduled = True
                    # An empty context: the rows of many requests are built there, not in this one's.
                    loop.call_soon(self._drain_soon, context=contextvars.Context())
                return
        self.drain()

    def drain(self) -> int:
        """Build, sign and submit the rows of every queued capture now; how many there were."""
        with self._lock:
            return self._drain_locked()

    def log_request(
        self,
        scope: Scope,
        *,
        status: int,
        duration_ms: int,
        reason: str | None = None,
        route: str | None = None,
        path: str | None = None,
    ) -> None:
        """One request's record (``path`` None: the scope's path as sent)."""
        try:
            if not self.wants(status, reason or SECURITY_STATUSES.get(status)):
                return
            state = scope.get("tframex") or {}
            path = path if path is not None else str(scope.get("path", ""))
            self.record(capture_request(scope, state, self.clock.time(), status, duration_ms, reason, route, path))
        except Exception:
            logger.exception("could not build the audit record of a request")

    def log_change(
        self,
        *,
        principal: Any,
        action: str,
        resource_type: str,
        resource_id: str | None = None,
        old_values: Mapping[str, Any] | None = None,
        new_values: Mapping[str, Any] | None = None,
        scope: Scope | None = None,
        internal_values: Mapping[str, Any] | None = None,
    ) -> None:
        """An administrative change (users, roles, keys): always recorded, secrets redacted.

        ``internal_values`` (JSON-safe) join ``new_values`` unredacted: ids and hashes the package
        made itself, which shape redaction would take for secrets (32+ hex digits)."""
        with self._lock:
            self._drain_locked()  # requests recorded before this change come first in the chain
            try:
                row = self.rows.change(
                    principal=principal,
                    action=action,
                    resource_type=resource_type,
                    resource_id=resource_id,
                    old_values=old_values,
                    new_values=new_values,
                    scope=scope,
                    internal_values=internal_values,
                    created=self._now(),
                )
                self._submit_audit(row)
            except Exception:
                logger.exception("could not build the audit record of %r", action)

    def log_event(
        self,
        *,
        event_type: str,
        action: str,
        status: str,
        reason: str | None = None,
        principal: Any = None,
        scope: Scope | None = None,
        details: Mapping[str, Any] | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
    ) -> None:
        """A security or system event, written to the ``events`` table."""
        with self._lock:
            self._drain_locked()
            try:
                rows = self.rows
                user_id, actor = rows.actor(rows.principal(scope, principal))
                body = dict(self.redactor.sanitize(details)) if details is not None else {}
                if reason is not None:
                    body["reason"] = rows.text(reason, 100)
                if actor is not None:
                    body.setdefault("actor", actor)
                event = rows.event(
                    event_type,
                    action,
                    status,
                    user_id,
                    rows.context(scope),
                    body or None,
                    self._now(),
                    resource=(resource_type, resource_id),
                )
                self.sink.submit("events", event)
            except Exception:
                logger.exception("could not build the event record of %r", action)

    async def start(self) -> None:
        """Build rows off the request path from now on, in callbacks of the running loop.

        The stack registers this as a startup hook; a logger never started builds each row
        when the request is recorded.
        """
        with self._lock:
            self._drain_locked()
            self._loop = asyncio.get_running_loop()
            self._scheduled = False

    async def flush(self) -> None:
        """Build every queued row, then wait until the sink has made everything durable."""
        self.drain()
        await self.sink.flush()

    def close(self) -> None:
        """Seal the chain with an end record (clean shutdown) so tail truncation is detectable.

        Every queued capture is built first; later records are built at once (a late row
        starts a new chain).
        """
        with self._lock:
            self._drain_locked()
            self._loop = None
            if self.closed:
                return
            if self.signer is not None and self.signer.seq > 0:
                self._submit_audit(chain_end_row(self.signer.chain_id, self.signer.seq + 1, self._now()))
            self.closed = True

    async def aclose(self) -> None:
        """Shutdown hook: seal the chain, then wait until every row is durable."""
        self.close()
        await self.sink.flush()


def get_audit(services: Any) -> AuditLogger:
    """The stack's audit logger: ``services.audit_logger`` (whatever the audit level)."""
    logger: AuditLogger = services.audit_logger
    return logger
