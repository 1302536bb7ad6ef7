"""Audit rows built from request captures and admin facts: redacted, escaped, bounded, unsigned.

No queue, lock, clock or I/O here: :class:`~tframex_asgi.audit.logger.AuditLogger` decides when
rows are built, then signs and submits them. Values that repeat from request to request
(methods, routes, user agents, client addresses, principals, whole request shapes) are escaped,
redacted and parsed once, in bounded memo tables: that is most of a row's cost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tframex_asgi.audit.canonical import RequestParts
from tframex_asgi.audit.chain import CHAIN_END_ACTION
from tframex_asgi.audit.records import SECURITY_STATUSES, RequestCapture, client_address, outcome, user_id_of
from tframex_asgi.audit.redact import REDACTED, Redactor, escape_text, truncate
from tframex_asgi.ids import new_time_uuid
from tframex_asgi.paths import normalize_path
from tframex_asgi.types import Scope
from tframex_asgi.util import memo_put

__all__ = ["RowBuilder", "Shape", "chain_end_row", "utc_datetime"]

# Entries per memo table; a full table is emptied and fills again with what repeats.
_MEMO_SIZE = 4096
# Longer values are built every time (rare), so a memo never holds more than ~2 MB.
_MEMO_MAX_CHARS = 512

Actor = tuple[str, str, str | None, str | None, bool]


@dataclass(slots=True)
class Shape:
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
    # The signer's static canonical parts of this shape's rows (None: the row does not fit the
    # template); filled in by the logger from the first row, once ``checked``.
    parts: RequestParts | None = None
    checked: bool = False


_EPOCH = dt.datetime(1970, 1, 1)
_SECONDS = dt.timedelta


def utc_datetime(seconds: float) -> dt.datetime:
    """Wall-clock seconds as a naive UTC datetime (the form every backend stores): what
    ``naive_utc(seconds)`` gives (to the microsecond), in half its time (one per audit row)."""
    return _EPOCH + _SECONDS(seconds=seconds)


def _actor_dict(a: tuple[Any, ...]) -> dict[str, Any]:
    # A literal, not dict(zip(keys, a)): a third of the time.
    return {"id": a[0], "username": a[1], "auth_method": a[2], "api_key_id": a[3], "external": a[4]}


def _request_id_text(request_id: Any) -> str | None:
    return truncate(escape_text(str(request_id)), 128) if request_id else None


def _memo_put(memo: dict[Any, Any], key: Any, value: Any) -> None:
    memo_put(memo, key, value, _MEMO_SIZE)


class RowBuilder:
    """Builds ``audit_logs`` and ``events`` rows; not thread-safe (the logger calls it under its lock)."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._texts: dict[str, str] = {}
        self._addresses: dict[str, str | None] = {}
        self._paths: dict[tuple[Any, Any, Any], str] = {}
        self._actors: dict[tuple[Any, ...], tuple[str | None, Actor]] = {}
        self._shapes: dict[tuple[Any, ...], Shape] = {}

    # -- values -------------------------------------------------------------------------------
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

    def text(self, value: Any, limit: int) -> str | None:
        """A text column: redacted, escaped and cut to ``limit`` characters."""
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

    def actor(self, principal: Any) -> tuple[str | None, dict[str, Any] | None]:
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

    def context(self, scope: Scope | None) -> dict[str, Any]:
        """The request columns of a row made outside the audit layer (ip, user agent, request id)."""
        state = (scope or {}).get("tframex") or {}
        ua: str | None = None
        for key, value in (scope or {}).get("headers", ()):
            if key == b"user-agent":
                ua = value.decode("latin-1")
                break
        client = (scope or {}).get("client")
        ip = state.get("client_ip") if "client_ip" in state else (client[0] if client else None)
        return {
            "ip_address": self._address(ip),
            "user_agent": truncate(self._clean(ua), 1024) if ua else None,
            "request_id": _request_id_text(state.get("request_id")),
        }

    @staticmethod
    def principal(scope: Scope | None, principal: Any) -> Any:
        """``principal``, or else the one the scope's request authenticated as."""
        if principal is not None or scope is None:
            return principal
        state = scope.get("tframex") or {}
        return state.get("principal") or scope.get("user")

    # -- request rows -------------------------------------------------------------------------
    def _shape(self, c: RequestCapture) -> Shape:
        """Everything in a request's rows that the next request of the same shape repeats."""
        path = self._normal_path(c.path, c.raw_path, c.root_path) if c.normalize else c.path
        reason = c.reason
        if reason is None and c.status in SECURITY_STATUSES:
            reason = SECURITY_STATUSES[c.status]
        clean = self._clean
        method = clean(str(c.method))
        route = None if c.route is None else str(c.route)
        user_id, actor = self.actor(c.principal)
        user_agent = c.user_agent.decode("latin-1") if c.user_agent else None
        path_text = clean(path)
        return Shape(
            c.principal,
            user_id,
            None if actor is None else tuple(actor.values()),
            method,
            None if route is None else clean(route),
            # Bounded: an 8 KiB path or query must not make every audit row 8 KiB larger.
            truncate(path_text, 2048),
            truncate(self.redactor.query(c.query), 2048),
            int(c.status),
            # Placeholders like "<unmatched>" say nothing: the path is the better action then.
            self.text(f"{method} {route if route and not route.startswith('<') else path}", 100),
            truncate(path_text, 255),
            outcome(c.status, reason),
            self.text(reason, 100),
            self._address(c.ip),
            truncate(clean(user_agent), 1024) if user_agent else None,
        )

    def _shape_of(self, c: RequestCapture) -> Shape:
        """The memoised :meth:`_shape` (keyed by everything but time, duration and request id;
        the principal by identity, held by the shape so its id cannot be reused meanwhile)."""
        path, query, ua, principal = c.path, c.query, c.user_agent, c.principal
        key = (c.method, path, c.raw_path, c.root_path, c.normalize, query, c.route, c.status, c.reason,
               id(principal), c.ip, ua)  # fmt: skip
        try:
            shape = self._shapes.get(key)
        except TypeError:  # an unhashable value in a malformed scope
            return self._shape(c)
        if shape is None or shape.principal is not principal:
            shape = self._shape(c)
            size = len(path) if isinstance(path, str) else _MEMO_MAX_CHARS
            size += len(query or b"") + len(ua or b"")
            if size <= _MEMO_MAX_CHARS:
                _memo_put(self._shapes, key, shape)
        return shape

    def request(self, capture: RequestCapture) -> tuple[dict[str, Any], Shape]:
        """The audit row of one captured request, and its shape."""
        shape = self._shape_of(capture)
        actor = shape.actor
        values: dict[str, Any] = {
            "method": shape.method,
            "route": shape.route,
            "path": shape.path,
            "query": shape.query,
            "status_code": shape.status,
            "duration_ms": int(capture.duration_ms),
            # A fresh dict per row: rows never share mutable parts.
            "actor": None if actor is None else _actor_dict(actor),
        }
        row: dict[str, Any] = {
            "id": new_time_uuid(),
            "user_id": shape.user_id,
            "action": shape.action,
            "resource_type": "http",
            "resource_id": shape.resource_id,
            "old_values": None,
            "new_values": values,
            "created_at": utc_datetime(capture.created),
            "status": shape.state,
            "reason": shape.reason,
            "ip_address": shape.ip_address,
            "user_agent": shape.user_agent,
            "request_id": _request_id_text(capture.request_id),
        }
        return row, shape

    def refusal_event(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The ``security`` event of a refused request, from its audit row."""
        return self.event(
            "security",
            row["reason"] or "denied",
            row["status"],
            row["user_id"],
            row,
            row["new_values"],
            row["created_at"],
            resource=("http", row["resource_id"]),
        )

    # -- other rows ---------------------------------------------------------------------------
    def change(
        self,
        *,
        principal: Any,
        action: str,
        resource_type: str,
        resource_id: str | None,
        old_values: Mapping[str, Any] | None,
        new_values: Mapping[str, Any] | None,
        scope: Scope | None,
        internal_values: Mapping[str, Any] | None,
        created: dt.datetime,
    ) -> dict[str, Any]:
        """The audit row of an administrative change (see AuditLogger.log_change)."""
        user_id, actor = self.actor(self.principal(scope, principal))
        new = dict(self.redactor.sanitize(new_values)) if new_values is not None else {}
        if internal_values:
            new.update(internal_values)
        if actor is not None:
            new.setdefault("actor", actor)
        return {
            "id": new_time_uuid(),
            "user_id": user_id,
            "action": self.text(action, 100),
            "resource_type": self.text(resource_type, 100),
            "resource_id": self.text(resource_id, 255),
            "old_values": self.redactor.sanitize(old_values) if old_values is not None else None,
            "new_values": new or None,
            "created_at": created,
            "status": "success",
            "reason": None,
            **self.context(scope),
        }

    def event(
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
    ) -> dict[str, Any]:
        """An ``events`` row; ``ctx`` holds the request columns (see :meth:`context`)."""
        if isinstance(details, dict) and ctx.get("request_id"):
            details = {**details, "request_id": ctx["request_id"]}
        return {
            "id": new_time_uuid(),
            "event_type": self.text(event_type, 100),
            "event_source": "tframex_asgi.audit",
            "user_id": user_id,
            "resource_type": self.text(resource[0], 100),
            "resource_id": self.text(resource[1], 255),
            "action": self.text(action, 100),
            "status": self.text(status, 50),
            "details": details,
            "ip_address": ctx.get("ip_address"),
            "user_agent": ctx.get("user_agent"),
            "created_at": created,
        }


def chain_end_row(chain_id: str, rows: int, created: dt.datetime) -> dict[str, Any]:
    """The record that seals a chain of ``rows`` rows (itself included)."""
    return {
        "id": new_time_uuid(),
        "user_id": None,
        "action": CHAIN_END_ACTION,
        "resource_type": "audit_chain",
        "resource_id": chain_id,
        "old_values": None,
        "new_values": {"rows": rows},
        "ip_address": None,
        "user_agent": None,
        "created_at": created,
        "status": "success",
        "reason": None,
        "request_id": None,
    }
