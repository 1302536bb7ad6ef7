"""``GET /audit`` [audit.view]: audit rows with filters and paging, as JSON, never secrets.

Query parameters: ``user_id``, ``action``, ``status``, ``reason``, ``request_id``, ``chain_id``
(exact match), ``since`` / ``until`` (ISO 8601 or Unix seconds, on ``created_at``), ``limit``
(1-1000, default 100) and ``offset``. Newest first. Authorization maps ``GET /audit`` to
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

from tframex_asgi.audit.redact import Redactor
from tframex_asgi.context import get_state
from tframex_asgi.errors import ValidationError
from tframex_asgi.http import error_body

__all__ = ["audit_routes", "parse_time", "public_row", "query_audit"]

logger = logging.getLogger("tframex_asgi.audit")
MAX_LIMIT = 1000
PERMISSION = "audit.view"
_EQUALITY = ("user_id", "action", "status", "reason", "request_id", "chain_id")
_JSON_COLUMNS = ("old_values", "new_values", "details")
# Scanning for a time window reads pages of this size from the (newest-first) table.
_SCAN_PAGE = 500
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
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def _as_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
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
) -> list[dict[str, Any]]:
    """Rows of ``audit_logs`` newest first. Storage filters are equality only, so a time window
    is applied while scanning pages, stopping at the first row older than ``since``."""
    order = ["-created_at", "-seq"]
    if since is None and until is None:
        rows: list[dict[str, Any]] = await storage.read(
            "audit_logs", filters, limit=limit, offset=offset, order_by=order
        )
        return rows
    out: list[dict[str, Any]] = []
    skipped = 0
    page_offset = 0
    while len(out) < limit:
        page = await storage.read("audit_logs", filters, limit=_SCAN_PAGE, offset=page_offset, order_by=order)
        for row in page:
            moment = _as_time(row.get("created_at"))
            if moment is None:
                continue
            if since is not None and moment < since:
                return out
            if until is not None and moment > until:
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(row)
            if len(out) >= limit:
                return out
        if len(page) < _SCAN_PAGE:
            break
        page_offset += _SCAN_PAGE
    return out


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


def _json_response(status: int, body: bytes) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers={"Cache-Control": "no-store"})


def audit_routes(services: Any) -> list[BaseRoute]:
    redactor = Redactor(services.config.security.audit.redact_fields)

    async def list_audit(request: Request) -> Response:
        # Authorization maps GET /audit to audit.view; checked here too, so the audit trail stays
        # closed when RBAC is disabled or the route is mounted somewhere the table does not cover.
        scopes = getattr(request.scope.get("auth"), "scopes", None) or ()
        if PERMISSION not in scopes:
            get_state(request.scope)["audit_reason"] = "forbidden"
            return _json_response(403, error_body("forbidden", f"{PERMISSION} is required"))
        params = request.query_params
        try:
            unknown = set(params) - {*_EQUALITY, "since", "until", "limit", "offset"}
            if unknown:
                raise ValidationError(f"unknown query parameter {sorted(unknown)[0]!r}")
            filters = {k: params[k] for k in _EQUALITY if params.get(k)}
            if "user_id" in filters:
                try:
                    filters["user_id"] = str(uuid.UUID(filters["user_id"]))
                except ValueError:
                    raise ValidationError("user_id must be a UUID") from None
            since = parse_time(params["since"], "since") if params.get("since") else None
            until = parse_time(params["until"], "until") if params.get("until") else None
            limit = _int_param(params, "limit", 100, 1, MAX_LIMIT)
            offset = _int_param(params, "offset", 0, 0, 10**9)
        except ValidationError as exc:
            return _json_response(400, error_body(exc.code, exc.message))
        drain = getattr(services.extras.get("audit"), "drain", None)
        if callable(drain):
            drain()  # rows of requests answered before this one may still be waiting to be built
        writer = services.extras.get("writer")
        if writer is not None:
            try:
                await asyncio.wait_for(writer.flush(), _FLUSH_WAIT)
            except Exception:  # TimeoutError included: answer with what is already stored
                logger.warning("GET /audit: the write queue did not flush; recent rows may be missing")
        rows = await query_audit(services.storage, filters, since=since, until=until, limit=limit, offset=offset)
        items = [public_row(r, redactor) for r in rows]
        body = {
            "items": items,
            "limit": limit,
            "offset": offset,
            "next_offset": offset + len(items) if len(items) == limit else None,
        }
        return _json_response(200, json.dumps(body, separators=(",", ":")).encode())

    return [Route("/audit", list_audit, methods=["GET"], name="audit")]
