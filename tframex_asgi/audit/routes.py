"""``GET /audit`` [audit.view]: audit rows with filters and paging, as JSON, never secrets.

Query parameters: ``user_id``, ``action``, ``status``, ``reason``, ``request_id``, ``chain_id``
(exact match), ``since`` / ``until`` (ISO 8601 or Unix seconds, on ``created_at``), ``limit``
(1-1000, default 100), ``cursor`` (the ``next_cursor`` of the previous page) and ``offset``.
Newest first, read by keyset so a page costs the same at any depth and table size. Authorization maps ``GET /audit`` to
``audit.view``; this module only serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tframex_asgi.audit.cursor import CursorCodec
from tframex_asgi.audit.redact import Redactor
from tframex_asgi.context import get_state
from tframex_asgi.errors import ValidationError
from tframex_asgi.http import error_body
from tframex_asgi.storage.schema import AUDIT_FILTERS, TABLES
from tframex_asgi.storage.validate import coerce
from tframex_asgi.util import as_naive_utc

__all__ = ["KEY_ORDER", "audit_routes", "parse_time", "public_row", "query_audit"]

logger = logging.getLogger("tframex_asgi.audit")
MAX_LIMIT = 1000
PERMISSION = "audit.view"
_EQUALITY = AUDIT_FILTERS
# Newest first; id breaks ties of created_at, so every row has one place in the order.
KEY_ORDER = ("-created_at", "-id")
_JSON_COLUMNS = ("old_values", "new_values", "details")
# GET /audit first waits this long for queued rows, so a client reads what it just caused.
_FLUSH_WAIT = 2.0


def parse_time(value: str, name: str) -> dt.datetime:
    """ISO 8601 (naive means UTC) or Unix seconds, as a naive UTC datetime."""
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(f"{name} must be ISO 8601 or Unix seconds") from None
    else:
        try:
            moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
        except (ValueError, OverflowError, OSError):
            raise ValidationError(f"{name} is out of range") from None
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:  # 9999-12-31T23:00-05:00 is past the last datetime in UTC
            raise ValidationError(f"{name} is out of range") from None
    return moment


def _as_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return as_naive_utc(value)
    if isinstance(value, str):
        try:
            return _as_time(dt.datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


def public_row(row: Mapping[str, Any], redactor: Redactor) -> dict[str, Any]:
    """A stored row as JSON-ready data: times in ISO UTC, JSON columns parsed, secrets masked."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in _JSON_COLUMNS and isinstance(value, str | bytes):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        if isinstance(value, dt.datetime):
            moment = _as_time(value)
            value = moment.isoformat(timespec="microseconds") + "Z" if moment else None
        elif value is not None and not isinstance(value, str | int | float | bool | dict | list):
            value = str(value)  # UUID, IP address objects of a driver
        out[key] = redactor.mask(value) if key in _JSON_COLUMNS else value
    return out


async def query_audit(
    storage: Any,
    filters: Mapping[str, Any],
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    after: tuple[dt.datetime, str] | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``audit_logs`` newest first, strictly after the row keyed ``after`` (created_at, id).

    One keyset read (:meth:`BaseStorage.read_page`): with the indexes of migration 3 it is one index
    range scan, so its cost does not grow with the table (``offset`` still reads the rows it skips).
    Rows with the same ``created_at`` come in descending ``id`` order.
    """
    bounds = {"created_at": (since, until)} if since is not None or until is not None else None
    rows: list[dict[str, Any]] = await storage.read_page(
        "audit_logs", filters, order_by=KEY_ORDER, after=after, bounds=bounds, limit=limit, offset=offset
    )
    return rows


def _int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ValidationError(f"{name} must be between {low} and {high}")
    return value


_Query = tuple[dict[str, Any], dt.datetime | None, dt.datetime | None, int, int, tuple[dt.datetime, str] | None]


def _parse_query(params: Mapping[str, str], cursors: CursorCodec) -> _Query:
    """Every parameter checked here, against the column it filters: a value the database would
    refuse (NUL, longer than the column, not a UUID) is a 400 naming it, never a driver error."""
    unknown = set(params) - {*_EQUALITY, "since", "until", "limit", "offset", "cursor"}
    if unknown:
        raise ValidationError(f"unknown query parameter {sorted(unknown)[0]!r}")
    columns = TABLES["audit_logs"].by_name
    filters: dict[str, Any] = {}
    for name in _EQUALITY:
        value = params.get(name)
        if not value:
            continue
        if name == "user_id":
            try:
                value = str(uuid.UUID(value))
            except ValueError:
                raise ValidationError("user_id must be a UUID") from None
        filters[name] = coerce(columns[name], value, name)
    since = parse_time(params["since"], "since") if params.get("since") else None
    until = parse_time(params["until"], "until") if params.get("until") else None
    limit = _int_param(params, "limit", 100, 1, MAX_LIMIT)
    offset = _int_param(params, "offset", 0, 0, 10**9)
    after = None
    if params.get("cursor"):
        if offset:
            raise ValidationError("cursor and offset cannot be combined: a cursor already says where the page starts")
        after = cursors.decode(params["cursor"], filters, since, until)
    return filters, since, until, limit, offset, after


def _json_response(status: int, body: bytes) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers={"Cache-Control": "no-store"})


def audit_routes(config: Any, storage: Any, audit: Any, writer: Any) -> list[BaseRoute]:
    """``GET /audit`` over ``storage``; ``audit`` and ``writer`` are drained and flushed first, so
    a caller sees the rows of the requests answered before its own."""
    redactor = Redactor(config.security.audit.redact_fields)
    cursors = CursorCodec(config.security.audit.hmac_key)

    async def list_audit(request: Request) -> Response:
        # Authorization maps GET /audit to audit.view; checked here too, so the audit trail stays
        # closed when RBAC is disabled or the route is mounted somewhere the table does not cover.
        scopes = getattr(request.scope.get("auth"), "scopes", None) or ()
        if PERMISSION not in scopes:
            get_state(request.scope)["audit_reason"] = "forbidden"
            return _json_response(403, error_body("forbidden", f"{PERMISSION} is required"))
        params = request.query_params
        try:
            query = _parse_query(params, cursors)
        except ValidationError as exc:
            return _json_response(400, error_body(exc.code, exc.message))
        filters, since, until, limit, offset, after = query
        drain = getattr(audit, "drain", None)
        if callable(drain):
            drain()  # rows of requests answered before this one may still be waiting to be built
        if writer is not None:
            try:
                await asyncio.wait_for(writer.flush(), _FLUSH_WAIT)
            except Exception:  # TimeoutError included: answer with what is already stored
                logger.warning("GET /audit: the write queue did not flush; recent rows may be missing")
        rows = await query_audit(storage, filters, since=since, until=until, limit=limit, offset=offset, after=after)
        items = [public_row(r, redactor) for r in rows]
        full = len(items) == limit
        body = {
            "items": items,
            "limit": limit,
            "offset": offset,
            "next_offset": offset + len(items) if full and after is None else None,
            "next_cursor": cursors.encode(rows[-1], filters, since, until) if full else None,
        }
        return _json_response(200, json.dumps(body, separators=(",", ":")).encode())

    return [Route("/audit", list_audit, methods=["GET"], name="audit")]
