"""Conversions between canonical values (see :mod:`.validate`) and what each driver stores.

Reads must return the same Python types on every backend: str UUIDs, naive UTC datetimes,
dict/list JSON, float DECIMAL, bool BOOLEAN, str INET.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tframex_asgi.storage.base import Row
from tframex_asgi.storage.schema import Table

__all__ = ["SQLITE_TS_FORMAT", "decode_json_columns", "from_sqlite", "to_sqlite"]

# Fixed width with microseconds, so text order equals time order in SQLite.
SQLITE_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def decode_json_columns(tbl: Table, row: Row) -> Row:
    for col in tbl.columns:
        if col.kind == "json" and isinstance(row.get(col.name), str):
            row[col.name] = json.loads(row[col.name])
    return row


def to_sqlite(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "timestamp":
        if value.tzinfo is None:
            # Canonical (naive) values: the same text as the strftime below (which pads years
            # below 1000 inconsistently; isoformat never does), several times faster.
            return value.isoformat(sep=" ", timespec="microseconds")
        text: str = value.strftime(SQLITE_TS_FORMAT)
        # strftime pads years below 1000 inconsistently across platforms; isoformat never does.
        return text if len(text) == 26 else value.isoformat(sep=" ", timespec="microseconds")
    if kind == "bool":
        return 1 if value else 0
    return value


def from_sqlite(tbl: Table, raw: Any, names: tuple[str, ...]) -> Row:
    row: Row = {}
    for name, value in zip(names, raw, strict=True):
        kind = tbl.by_name[name].kind
        if value is None:
            row[name] = None
        elif kind == "timestamp":
            row[name] = datetime.fromisoformat(value)
        elif kind == "bool":
            row[name] = bool(value)
        elif kind == "json":
            row[name] = json.loads(value)
        elif kind == "decimal":
            row[name] = float(value)
        else:
            row[name] = value
    return row
