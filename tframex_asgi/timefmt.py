"""One timestamp format in every CLI and API output: ISO 8601 in UTC with ``Z``.

Stored times are naive UTC (the storage layer's canonical form); aware ones are converted.
``2026-12-06T21:41:40.581683Z`` sorts as text, parses with ``datetime.fromisoformat`` (3.11+)
and is the form ``GET /audit`` returns, so a client parses one form everywhere.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tframex_asgi.util import as_naive_utc

__all__ = ["json_default", "utc_iso"]


def utc_iso(value: dt.datetime) -> str:
    return as_naive_utc(value).isoformat(timespec="microseconds") + "Z"


def json_default(value: Any) -> Any:
    """``json.dumps(..., default=json_default)``: datetimes as :func:`utc_iso`, others as text."""
    if isinstance(value, dt.datetime):
        return utc_iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
