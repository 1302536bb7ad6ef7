"""The audit logger: builds redacted, escaped, hash-chained rows and hands them to the write queue.

Every method is synchronous and never blocks or raises into the caller: rows go to the storage
package's :class:`WriteQueue` (``submit``), which batches them off the request path, spills them
to disk during a database outage and flushes at shutdown.

Requests cost the request path one tuple (:func:`~tframex_asgi.audit.records.capture_request`)
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
from dataclasses import dataclass
from typing import Any, Protocol

from tframex_asgi.audit.chain import CHAIN_END_ACTION, ChainSigner, RequestParts, request_parts
from tframex_asgi.audit.records import (
    SECURITY_STATUSES,
    RequestCapture,
    capture_request,
    client_address,
    is_security,
    outcome,
    user_id_of,
)
from tframex_asgi.audit.redact import REDACTED, Redactor, escape_text, truncate
from tframex_asgi.clock import Clock, SystemClock
from tframex_asgi.config.audit import AuditConfig
from tframex_asgi.ids import new_uuid
from tframex_asgi.types import Scope

try:
    from tframex_asgi.paths import normalize_path
except ImportError:  # pragma: no cover - paths ships with rbac

    def normalize_path(scope: Scope) -> str | None:
        return None


__all__ = ["SECURITY_STATUSES", "AuditLogger", "AuditSink", "get_audit", "outcome"]

logger = logging.getLogger("tframex_asgi.audit")

# Bounded memo tables for values that repeat from request to request (methods, routes, user
# agents, client addresses, principals): escaping and parsing them once is most of a row's cost.
_MEMO_SIZE = 4096
# Longer values are escaped every time (rare), so the memo never holds more than ~2 MB.
_MEMO_MAX_CHARS = 512
# One loop callback builds at most this many rows (~11 µs each), then yields the loop to the
# requests: a burst of captures never holds the loop for more than ~1.5 ms.
_DRAIN_BATCH = 128

Actor = tuple[str, str, str | None, str | None, bool]
_ACTOR_KEYS = ("id", "username", "auth_method", "api_key_id", "external")


@dataclass(slots=True)
class _Shape:
    """The parts of a request's audit row that repeat for every request of the same shape."""

    principal: Any  # held: the memo key has its id()
    user_id: str | None
    actor: tuple[Any, ...] | None
    method: str
    route: str | None
    path: str | None
    query: str | None
    status: int
    action: str | None
    resource_id: str | None
    state: str
    reason: str | None
    ip_address: str | None
    user_agent: str | None
    # request_parts() of the first row (None when it did not fit the template), once checked.
    parts: RequestParts | None = None
    checked: bool = False


class AuditSink(Protocol):
    """What the logger needs from the storage package's WriteQueue."""

    def submit(self, table: str, row: dict[str, Any]) -> None: ...

    async def flush(self) -> None: ...


def _request_id_text(request_id: Any) -> str | None:
    return truncate(escape_text(str(request_id)), 128) if request_id else None


def _memo_put(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = value


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
        self._texts: dict[str, str] = {}
        self._addresses: dict[str, str | None] = {}
        self._paths: dict[tuple[Any, Any, Any], str] = {}
        self._actors: dict[tuple[Any, ...], tuple[str | None, Actor]] = {}
        self._shapes: dict[tuple[Any, ...], _Shape] = {}

    @property
    def chain_id(self) -> str | None:
        return self.signer.chain_id if self.signer else None

    @property
    def pending(self) -> int:
        """Requests recorded whose rows are not built yet."""
        return len(self._pending)

    # -- values -------------------------------------------------------------------------------
    def _now(self) -> dt.datetime:
        return self._datetime(self.clock.time())

    @staticmethod
    def _datetime(seconds: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)

    def _clean(self, value: str) -> str:
        """``redactor.text(value)``, memoised (a value holding a secret is never kept as a key).

        Redaction by shape scans the whole text, so it is paid once per distinct value, and a
        request row's texts once per request shape (see :meth:`_shape_of`)."""
        cached = self._texts.get(value)
        if cached is None:
            cached = self.redactor.text(value)
            if len(value) <= _MEMO_MAX_CHARS and REDACTED not in cached:
                _memo_put(self._texts, value, cached)
        return cached

    def _text(self, value: Any, limit: int) -> str | None:
        return None if value is None else truncate(self._clean(str(value)), limit)

    def _address(self, value: Any) -> str | None:
        if not value:
            return None
        text = str(value)
        try:
            return self._addresses[text]
        except KeyError:
            address = client_address(text)
            if len(text) <= _MEMO_MAX_CHARS:
                _memo_put(self._addresses, text, address)
            return address

    def _normal_path(self, path: Any, raw_path: Any, root_path: Any) -> str:
        key = (path, raw_path, root_path)
        try:
            return self._paths[key]
        except (KeyError, TypeError):  # TypeError: an unhashable value in a malformed scope
            pass
        normal = normalize_path({"path": path, "raw_path": raw_path, "root_path": root_path})
        # A malformed path is recorded as sent (escaped when the row is built): that is the evidence.
        text = normal if normal is not None else str(path)
        if isinstance(path, str) and len(path) <= _MEMO_MAX_CHARS and isinstance(raw_path, bytes | None):
            _memo_put(self._paths, key, text)
        return text

    def _actor(self, principal: Any) -> tuple[str | None, dict[str, Any] | None]:
        """(user_id column, the actor as stored in new_values: escaped, JSON-plain)."""
        if principal is None or not getattr(principal, "is_authenticated", False):
            return None, None
        ident = str(getattr(principal, "id", ""))
        username = str(getattr(principal, "username", ""))
        method = getattr(principal, "auth_method", None)
        key_id = getattr(principal, "api_key_id", None)
        external = bool(getattr(principal, "external", False))
        memo_key = (ident, username, None if method is None else str(method), None if key_id is None else str(key_id))
        found = self._actors.get((*memo_key, external))
        if found is None:
            text = self.redactor.text
            user_id = None if external else user_id_of(principal)
            actor: Actor = (
                text(ident),
                text(username),
                None if memo_key[2] is None else text(memo_key[2]),
                None if memo_key[3] is None else text(memo_key[3]),
                external,
            )
            found = (user_id, actor)
            if len(ident) + len(username) <= _MEMO_MAX_CHARS:
                _memo_put(self._actors, (*memo_key, external), found)
        user_id, (a_id, a_name, a_method, a_key, a_external) = found
        # A fresh dict per row: rows never share mutable parts.
        return user_id, {"id": a_id, "username": a_name, "auth_method": a_method, "api_key_id": a_key,
                         "external": a_external}  # fmt: skip

    def _context(self, scope: Scope | None) -> dict[str, Any]:
        state = (scope or {}).get("tframex") or {}
        ua: str | None = None
        for key, value in (scope or {}).get("headers", ()):
            if key == b"user-agent":
                ua = value.decode("latin-1")
                break
        client = (scope or {}).get("client")
        ip = state.get("client_ip") if "client_ip" in state else (client[0] if client else None)
        request_id = state.get("request_id")
        return {
            "ip_address": self._address(ip),
            "user_agent": truncate(self._clean(ua), 1024) if ua else None,
            "request_id": _request_id_text(request_id),
        }

    def _principal(self, scope: Scope | None, principal: Any) -> Any:
        if principal is not None or scope is None:
            return principal
        state = scope.get("tframex") or {}
        return state.get("principal") or scope.get("user")

    # -- building and submitting (always under self._lock) -------------------------------------
    def _submit_audit(self, row: dict[str, Any], shape: _Shape | None = None) -> None:
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

    def _shape(self, capture: RequestCapture) -> _Shape:
        """Everything in a request's rows that the next request of the same shape repeats."""
        (_, method, path, raw_path, root_path, normalize, query, route, status, _, reason,
         principal, ip, ua, _) = capture  # fmt: skip
        if normalize:
            path = self._normal_path(path, raw_path, root_path)
        if reason is None and status in SECURITY_STATUSES:
            reason = SECURITY_STATUSES[status]
        clean = self._clean
        method = clean(str(method))
        route = None if route is None else str(route)
        user_id, actor = self._actor(principal)
        user_agent = ua.decode("latin-1") if ua else None
        path_text = clean(path)
        state = outcome(status, reason)
        return _Shape(
            principal,
            user_id,
            None if actor is None else tuple(actor.values()),
            method,
            None if route is None else clean(route),
            # Bounded: an 8 KiB path or query must not make every audit row 8 KiB larger.
            truncate(path_text, 2048),
            truncate(self.redactor.query(query), 2048),
            int(status),
            # Placeholders like "<unmatched>" say nothing: the path is the better action then.
            self._text(f"{method} {route if route and not route.startswith('<') else path}", 100),
            truncate(path_text, 255),
            state,
            self._text(reason, 100),
            self._address(ip),
            truncate(clean(user_agent), 1024) if user_agent else None,
        )

    def _shape_of(self, capture: RequestCapture) -> _Shape:
        """The memoised :meth:`_shape` (keyed by everything but time, duration and request id;
        the principal by identity, held by the shape so its id cannot be reused meanwhile)."""
        (_, method, path, raw_path, root_path, normalize, query, route, status, _, reason,
         principal, ip, ua, _) = capture  # fmt: skip
        key = (method, path, raw_path, root_path, normalize, query, route, status, reason, id(principal), ip, ua)
        try:
            shape = self._shapes.get(key)
        except TypeError:  # an unhashable value in a malformed scope
            return self._shape(capture)
        if shape is None or shape.principal is not principal:
            shape = self._shape(capture)
            size = len(path) if isinstance(path, str) else _MEMO_MAX_CHARS
            size += len(query or b"") + len(ua or b"")
            if size <= _MEMO_MAX_CHARS:
                _memo_put(self._shapes, key, shape)
        return shape

    def _build_request(self, capture: RequestCapture) -> None:
        """The rows of one captured request: its audit row, and an event when it was refused."""
        created, duration_ms, request_id = capture[0], capture[9], capture[14]
        shape = self._shape_of(capture)
        actor = shape.actor
        ctx = {
            "ip_address": shape.ip_address,
            "user_agent": shape.user_agent,
            "request_id": _request_id_text(request_id),
        }
        values: dict[str, Any] = {
            "method": shape.method,
            "route": shape.route,
            "path": shape.path,
            "query": shape.query,
            "status_code": shape.status,
            "duration_ms": int(duration_ms),
            # A fresh dict per row: rows never share mutable parts.
            "actor": None if actor is None else dict(zip(_ACTOR_KEYS, actor, strict=True)),
        }
        row: dict[str, Any] = {
            "id": new_uuid(),
            "user_id": shape.user_id,
            "action": shape.action,
            "resource_type": "http",
            "resource_id": shape.resource_id,
            "old_values": None,
            "new_values": values,
            "created_at": self._datetime(created),
            "status": shape.state,
            "reason": shape.reason,
            **ctx,
        }
        self._submit_audit(row, shape)
        if shape.state == "denied" and self.config.events_table:
            self._submit_event(
                "security",
                row["reason"] or "denied",
                shape.state,
                shape.user_id,
                ctx,
                values,
                row["created_at"],
                resource=("http", row["resource_id"]),
            )

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
                principal = self._principal(scope, principal)
                user_id, actor = self._actor(principal)
                new = dict(self.redactor.sanitize(new_values)) if new_values is not None else {}
                if internal_values:
                    new.update(internal_values)
                if actor is not None:
                    new.setdefault("actor", actor)
                row: dict[str, Any] = {
                    "id": new_uuid(),
                    "user_id": user_id,
                    "action": self._text(action, 100),
                    "resource_type": self._text(resource_type, 100),
                    "resource_id": self._text(resource_id, 255),
                    "old_values": self.redactor.sanitize(old_values) if old_values is not None else None,
                    "new_values": new or None,
                    "created_at": self._now(),
                    "status": "success",
                    "reason": None,
                    **self._context(scope),
                }
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
                user_id, actor = self._actor(self._principal(scope, principal))
                body = dict(self.redactor.sanitize(details)) if details is not None else {}
                if reason is not None:
                    body["reason"] = self._text(reason, 100)
                if actor is not None:
                    body.setdefault("actor", actor)
                self._submit_event(
                    event_type,
                    action,
                    status,
                    user_id,
                    self._context(scope),
                    body or None,
                    self._now(),
                    resource=(resource_type, resource_id),
                )
            except Exception:
                logger.exception("could not build the event record of %r", action)

    def _submit_event(
        self,
        event_type: str,
        action: str,
        status: str,
        user_id: str | None,
        ctx: Mapping[str, Any],
        details: Any,
        created: dt.datetime,
        *,
        resource: tuple[str | None, str | None] = (None, None),
    ) -> None:
        if isinstance(details, dict) and ctx.get("request_id"):
            details = {**details, "request_id": ctx["request_id"]}
        self.sink.submit(
            "events",
            {
                "id": new_uuid(),
                "event_type": self._text(event_type, 100),
                "event_source": "tframex_asgi.audit",
                "user_id": user_id,
                "resource_type": self._text(resource[0], 100),
                "resource_id": self._text(resource[1], 255),
                "action": self._text(action, 100),
                "status": self._text(status, 50),
                "details": details,
                "ip_address": ctx.get("ip_address"),
                "user_agent": ctx.get("user_agent"),
                "created_at": created,
            },
        )

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
                self._submit_audit(
                    {
                        "id": new_uuid(),
                        "user_id": None,
                        "action": CHAIN_END_ACTION,
                        "resource_type": "audit_chain",
                        "resource_id": self.signer.chain_id,
                        "old_values": None,
                        "new_values": {"rows": self.signer.seq + 1},
                        "ip_address": None,
                        "user_agent": None,
                        "created_at": self._now(),
                        "status": "success",
                        "reason": None,
                        "request_id": None,
                    }
                )
            self.closed = True

    async def aclose(self) -> None:
        """Shutdown hook: seal the chain, then wait until every row is durable."""
        self.close()
        await self.sink.flush()


def get_audit(services: Any) -> AuditLogger:
    """The stack's logger (cached in ``services.extras["audit"]``), writing through the write queue."""
    existing = services.extras.get("audit")
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    from tframex_asgi.storage.queue import get_writer

    writer = get_writer(services)
    sink: AuditSink = writer
    if services.config.security.audit.durability == "durable":
        from tframex_asgi.audit.journal import get_journal

        sink = get_journal(services)  # hooks after the writer's: started after it, stopped before it
    audit = AuditLogger(sink, services.config.security.audit, clock=services.clock)
    services.extras["audit"] = audit
    # Registered after the writer's hooks: started after it, and closed before it (shutdown runs
    # in reverse order), so the queued rows and the end record reach a queue that accepts rows.
    services.on_startup(audit.start)
    services.on_shutdown(audit.aclose)
    return audit
