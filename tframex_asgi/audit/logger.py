"""The audit logger: builds redacted, escaped, hash-chained rows and hands them to the write queue.

Every method is synchronous and never blocks or raises into the caller: rows go to the storage
package's :class:`WriteQueue` (``submit``), which batches them off the request path, spills them
to disk during a database outage and flushes at shutdown. Rows are signed (``seq`` and hash) in
submit order, which is also the order the queue writes them in.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from tframex_asgi.audit.chain import CHAIN_END_ACTION, ChainSigner
from tframex_asgi.audit.records import SECURITY_STATUSES, client_address, header, is_security, outcome, user_id_of
from tframex_asgi.audit.redact import Redactor, escape_text, truncate
from tframex_asgi.clock import Clock, SystemClock
from tframex_asgi.config.audit import AuditConfig
from tframex_asgi.types import Scope

__all__ = ["SECURITY_STATUSES", "AuditLogger", "AuditSink", "get_audit", "outcome"]

logger = logging.getLogger("tframex_asgi.audit")


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
        key = self.config.hmac_key.encode() if self.config.hmac_key else None
        self.signer = ChainSigner(key) if self.config.hash_chain else None
        self.closed = False

    @property
    def chain_id(self) -> str | None:
        return self.signer.chain_id if self.signer else None

    # -- row building -------------------------------------------------------------------------
    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.time(), dt.UTC).replace(tzinfo=None)

    def _actor(self, principal: Any) -> tuple[str | None, dict[str, Any] | None]:
        """(user_id column, the actor as stored in new_values: escaped, JSON-plain)."""
        if principal is None or not getattr(principal, "is_authenticated", False):
            return None, None
        text = self.redactor.text
        method = getattr(principal, "auth_method", None)
        key_id = getattr(principal, "api_key_id", None)
        actor = {
            "id": text(str(getattr(principal, "id", ""))),
            "username": text(str(getattr(principal, "username", ""))),
            "auth_method": None if method is None else text(str(method)),
            "api_key_id": None if key_id is None else text(str(key_id)),
            "external": bool(getattr(principal, "external", False)),
        }
        return user_id_of(principal), actor

    def _context(self, scope: Scope | None) -> dict[str, Any]:
        state = (scope or {}).get("tframex") or {}
        ua = header(scope, b"user-agent")
        client = (scope or {}).get("client")
        ip = state.get("client_ip") if "client_ip" in state else (client[0] if client else None)
        request_id = state.get("request_id")
        return {
            "ip_address": client_address(ip),
            "user_agent": truncate(self.redactor.text(ua), 1024) if ua else None,
            "request_id": truncate(escape_text(str(request_id)), 128) if request_id else None,
        }

    def _principal(self, scope: Scope | None, principal: Any) -> Any:
        if principal is not None or scope is None:
            return principal
        state = scope.get("tframex") or {}
        return state.get("principal") or scope.get("user")

    def _text(self, value: Any, limit: int) -> str | None:
        return None if value is None else truncate(self.redactor.text(str(value)), limit)

    def _submit_audit(self, row: dict[str, Any]) -> None:
        if self.signer is not None:
            if self.closed:
                # The old chain is sealed: a late row (after shutdown began) starts a new, open chain.
                logger.warning("audit row %r after close: starting a new chain", row.get("action"))
                self.signer = ChainSigner(self.signer.key)
                self.closed = False
            self.signer.sign(row)
        self.sink.submit("audit_logs", row)

    # -- public API ---------------------------------------------------------------------------
    def wants(self, status: int, reason: str | None) -> bool:
        """Whether a request that ended with ``status`` is recorded at this level."""
        if self.config.level == "full":
            return True
        return self.config.level == "security" and is_security(status, reason)

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
        """One request's record (the middleware calls this once per request)."""
        try:
            if reason is None and status in SECURITY_STATUSES:
                reason = SECURITY_STATUSES[status]
            if not self.wants(status, reason):
                return
            text = self.redactor.text
            method = text(str(scope.get("method", "")))
            path = path if path is not None else str(scope.get("path", ""))
            principal = self._principal(scope, None)
            user_id, actor = self._actor(principal)
            ctx = self._context(scope)
            state = outcome(status, reason)
            created = self._now()
            # Built from known parts, each escaped here: the generic sanitize() walk costs ~10x more.
            values: dict[str, Any] = {
                "method": method,
                "route": None if route is None else text(route),
                # Bounded: an 8 KiB path or query must not make every audit row 8 KiB larger.
                "path": truncate(text(path), 2048),
                "query": truncate(self.redactor.query(scope.get("query_string", b"")), 2048),
                "status_code": int(status),
                "duration_ms": int(duration_ms),
                "actor": actor,
            }
            row: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "user_id": user_id,
                # Placeholders like "<unmatched>" say nothing: the path is the better action then.
                "action": self._text(f"{method} {route if route and not route.startswith('<') else path}", 100),
                "resource_type": "http",
                "resource_id": self._text(path, 255),
                "old_values": None,
                "new_values": values,
                "created_at": created,
                "status": state,
                "reason": self._text(reason, 100),
                **ctx,
            }
            self._submit_audit(row)
            if state == "denied" and self.config.events_table:
                self._submit_event(
                    "security",
                    row["reason"] or "denied",
                    state,
                    user_id,
                    ctx,
                    values,
                    created,
                    resource=("http", row["resource_id"]),
                )
        except Exception:
            # Auditing must never break the request it records; the failure itself is logged.
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
    ) -> None:
        """An administrative change (users, roles, keys): always recorded, secrets redacted."""
        try:
            principal = self._principal(scope, principal)
            user_id, actor = self._actor(principal)
            new = dict(self.redactor.sanitize(new_values)) if new_values is not None else {}
            if actor is not None:
                new.setdefault("actor", actor)
            row: dict[str, Any] = {
                "id": str(uuid.uuid4()),
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
                "id": str(uuid.uuid4()),
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

    def close(self) -> None:
        """Seal the chain with an end record (clean shutdown) so tail truncation is detectable."""
        if self.closed:
            return
        if self.signer is not None and self.signer.seq > 0:
            self._submit_audit(
                {
                    "id": str(uuid.uuid4()),
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
    audit = AuditLogger(writer, services.config.security.audit, clock=services.clock)
    services.extras["audit"] = audit
    # Registered after the writer's hooks, so it runs before them at shutdown (reverse order):
    # the end record is submitted while the queue still accepts rows.
    services.on_shutdown(audit.aclose)
    return audit
