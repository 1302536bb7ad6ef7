"""Turn caller values into one canonical form before any backend sees them.

Each backend would otherwise accept different things (SQLite stores anything anywhere, PostgreSQL
rejects NUL bytes and over-long VARCHARs), so the checks live here and every backend behaves
the same. Canonical values: UUID -> str, TIMESTAMP -> naive UTC datetime, JSONB -> its JSON text,
DECIMAL -> float, INET -> str, BOOLEAN -> bool.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

from tframex_asgi.errors import ValidationError
from tframex_asgi.storage.schema import NOW, TABLES, Column, Table, column, table
from tframex_asgi.util import as_naive_utc, memo_put
from tframex_asgi.util import naive_utc as utcnow

__all__ = [
    "MAX_VALUE_CHARS",
    "check_page",
    "coerce",
    "in_slices",
    "key_filters",
    "prepare_filters",
    "prepare_insert",
    "prepare_order",
    "prepare_update",
    "prepared_chunks",
    "row_key",
    "utcnow",
]

# PostgreSQL caps a value at 1 GB; far below that a single row is a bug or an attack, and one
# limit on every backend keeps behaviour identical.
MAX_VALUE_CHARS = 16 * 1024 * 1024
_T = TypeVar("_T")
_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}


def _fail(col: str, message: str) -> ValidationError:
    return ValidationError(f"{col}: {message}", code="invalid_value")


def _text(name: str, value: str, length: int | None) -> str:
    if len(value) > MAX_VALUE_CHARS:
        raise _fail(name, f"value of {len(value)} characters exceeds the limit of {MAX_VALUE_CHARS}")
    if length is not None and len(value) > length:
        raise _fail(name, f"value of {len(value)} characters exceeds VARCHAR({length})")
    if "\x00" in value:
        raise _fail(name, "NUL characters cannot be stored")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _fail(name, "not valid Unicode (lone surrogate)") from None
    return value


def _json_strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield str(k)
            yield from _json_strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _json_strings(v)


# One encoder for every value: json.dumps with these options builds a new JSONEncoder per call;
# the output is identical.
_JSON_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _json(name: str, value: Any) -> str:
    try:
        text = _JSON_ENCODE(value)
    except (TypeError, ValueError) as exc:
        raise _fail(name, f"not JSON-serialisable: {exc}") from None
    if len(text) > MAX_VALUE_CHARS:
        raise _fail(name, f"JSON of {len(text)} characters exceeds the limit of {MAX_VALUE_CHARS}")
    # PostgreSQL's jsonb refuses \u0000; only walk the value when the cheap test says it may hold one.
    if "\\u0000" in text and any("\x00" in s for s in _json_strings(value)):
        raise _fail(name, "NUL characters cannot be stored")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _fail(name, "not valid Unicode (lone surrogate)") from None
    return text


_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid(col: Column, value: Any, where: str) -> str:
    if isinstance(value, str):
        if len(value) == 36 and _UUID_RE.fullmatch(value):
            return value  # already canonical: skip the (slower) parse
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise _fail(where, f"{value[:64]!r} is not a UUID") from None
    if isinstance(value, uuid.UUID):
        return str(value)
    _reject(where, value, "a UUID")


def _string(col: Column, value: Any, where: str) -> str:
    return _text(where, value, col.length) if isinstance(value, str) else _reject(where, value, "a string")


def _timestamp(col: Column, value: Any, where: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _fail(where, f"{value[:64]!r} is not an ISO 8601 timestamp") from None
    if not isinstance(value, datetime):
        _reject(where, value, "a datetime")
    return as_naive_utc(value)


def _bool(col: Column, value: Any, where: str) -> bool:
    return value if isinstance(value, bool) else _reject(where, value, "a bool")


def _int(col: Column, value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _reject(where, value, "an integer")
    low, high = _INT_RANGE[col.kind]
    if not low <= value <= high:
        raise _fail(where, f"{value} is out of range for {col.kind.upper()}")
    return value


def _decimal(col: Column, value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        _reject(where, value, "a number")
    number = float(value)
    if not math.isfinite(number):
        raise _fail(where, "NaN and infinity cannot be stored")
    return number


# Canonical form of recently seen address strings: parsing one (ipaddress) costs far more than
# a dict lookup, and a server sees the same few client addresses again and again. Bounded; only valid inputs are kept.
_INET_MEMO: dict[str, str] = {}
_INET_MEMO_SIZE = 4096
_INET_MEMO_MAX_CHARS = 64


def _inet(col: Column, value: Any, where: str) -> str:
    if type(value) is str:
        found = _INET_MEMO.get(value)
        if found is not None:
            return found
        text = _inet_parse(value, where)
        if len(value) <= _INET_MEMO_MAX_CHARS:
            memo_put(_INET_MEMO, value, text, _INET_MEMO_SIZE)
        return text
    return _inet_parse(value, where)


def _inet_parse(value: Any, where: str) -> str:
    if not isinstance(value, str | ipaddress.IPv4Address | ipaddress.IPv6Address):
        _reject(where, value, "an IP address")
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        raise _fail(where, f"{str(value)[:64]!r} is not an IP address") from None
    # PostgreSQL prints a host address without its /32 (or /128): do the same everywhere.
    full = iface.network.prefixlen == iface.ip.max_prefixlen
    return str(iface.ip) if full else str(iface)


_COERCE: dict[str, Callable[[Column, Any, str], Any]] = {
    "uuid": _uuid,
    "varchar": _string,
    "text": _string,
    "timestamp": _timestamp,
    "bool": _bool,
    "int": _int,
    "bigint": _int,
    "decimal": _decimal,
    "json": lambda col, value, where: _json(where, value),
    "inet": _inet,
}


def coerce(col: Column, value: Any, where: str) -> Any:
    """The canonical form of ``value`` for ``col`` (None stays None); ``where`` names it in errors."""
    return None if value is None else _COERCE[col.kind](col, value, where)


def _reject(where: str, value: Any, expected: str) -> NoReturn:
    raise _fail(where, f"expected {expected}, got {type(value).__name__}")


def _check_constraints(tbl: Table, row: Mapping[str, Any], names: Iterable[str]) -> None:
    for name in names:
        col = tbl.by_name[name]
        value = row.get(name)
        if value is None:
            if col.not_null or name in tbl.primary_key:
                raise ValidationError(f"{tbl.name}.{name} is required (NOT NULL)", code="not_null")
        elif col.choices and value not in col.choices:
            raise _fail(f"{tbl.name}.{name}", f"{value!r} is not one of {', '.join(col.choices)}")


# Per table, computed once: (name, column, coerce function, "table.column", default, fast) for
# every column, and (name, required, choices, "table.column") for the columns that carry a NOT NULL or
# CHECK constraint. Inserts are the hot path.
_MISSING = object()
# ``fast`` names the inline test that recognises a value already in canonical form (the common
# case), so the coerce function only runs for the others (and raises the same errors as ever).
_CALL, _TEXT, _TIMESTAMP, _UUID, _JSON, _INET = 0, 1, 2, 3, 4, 5
_FAST = {"varchar": _TEXT, "text": _TEXT, "timestamp": _TIMESTAMP, "uuid": _UUID, "json": _JSON, "inet": _INET}


def _plan(t: Table, c: Column) -> tuple[str, Column, Callable[[Column, Any, str], Any], str, object, int, int]:
    limit = min(c.length, MAX_VALUE_CHARS) if c.length is not None else MAX_VALUE_CHARS
    return c.name, c, _COERCE[c.kind], f"{t.name}.{c.name}", c.default, _FAST.get(c.kind, _CALL), limit


_PLANS = {t.name: tuple(_plan(t, c) for c in t.columns) for t in TABLES.values()}
_UUID_MATCH = _UUID_RE.fullmatch
_CONSTRAINED = {
    t.name: tuple(
        (c.name, c.not_null or c.name in t.primary_key, c.choices, f"{t.name}.{c.name}")
        for c in t.columns
        if c.not_null or c.choices or c.name in t.primary_key
    )
    for t in TABLES.values()
}


def _check_row(tbl: Table, row: Mapping[str, Any]) -> None:
    """``_check_constraints`` over a full row, with the per-table plan."""
    for name, required, choices, where in _CONSTRAINED[tbl.name]:
        value = row[name]
        if value is None:
            if required:
                raise ValidationError(f"{where} is required (NOT NULL)", code="not_null")
        elif choices and value not in choices:
            raise _fail(where, f"{value!r} is not one of {', '.join(choices)}")


def prepare_insert(
    name: str, data: Mapping[str, Any], now: Callable[[], datetime] = utcnow
) -> tuple[Table, dict[str, Any]]:
    """A full row (every column, defaults applied) in canonical form."""
    tbl = table(name)
    if not isinstance(data, Mapping):
        raise ValidationError(f"a row of {tbl.name} must be a mapping, got {type(data).__name__}")
    known = tbl.by_name
    if type(data) is not dict or not known.keys() >= data.keys():
        for key in data:
            if key not in known:
                column(tbl, key)  # raises, naming it
    row: dict[str, Any] = {}
    stamp: datetime | None = None  # one "now" per row, so created_at == updated_at
    get = data.get
    for col_name, col, fn, where, default, fast, limit in _PLANS[tbl.name]:
        value = get(col_name, _MISSING)
        if value is _MISSING:
            if col_name == "id" and tbl.has_id:
                value = str(uuid.uuid4())
            elif default is NOW:
                stamp = stamp or now()
                value = stamp
            else:
                value = default
        elif value is None:
            pass
        # Already canonical: keep the value (exactly what the coerce function would return)
        # without the call; anything else goes through it (and fails with the usual error).
        elif fast == _TEXT:
            if type(value) is not str or len(value) > limit or not value.isascii() or "\x00" in value:
                value = fn(col, value, where)
        elif fast == _JSON:
            value = _json(where, value)
        elif fast == _TIMESTAMP:
            if type(value) is not datetime or value.tzinfo is not None:
                value = fn(col, value, where)
        elif fast == _UUID:
            if type(value) is not str or len(value) != 36 or _UUID_MATCH(value) is None:
                value = fn(col, value, where)
        elif fast == _INET:
            value = (_INET_MEMO.get(value) if type(value) is str else None) or fn(col, value, where)
        else:
            value = fn(col, value, where)
        row[col_name] = value
    _check_row(tbl, row)
    return tbl, row


# Rows checked between two returns to the event loop in prepared_chunks: enough to make the
# yield cheap next to the checks, few enough that a large batch never holds the loop for long.
PREPARE_CHUNK = 200


async def in_slices(rows: Sequence[_T]) -> AsyncIterator[Sequence[_T]]:
    """``rows`` ``PREPARE_CHUNK`` at a time, with a return to the event loop between two slices:
    whatever is done to a write-queue batch (thousands of rows) never holds the loop for all of it."""
    for start in range(0, len(rows), PREPARE_CHUNK):
        if start:
            await asyncio.sleep(0)
        yield rows[start : start + PREPARE_CHUNK]


async def prepared_chunks(name: str, rows: Sequence[Mapping[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
    """:func:`prepare_insert` of every row, slice by slice (:func:`in_slices`). Every backend's
    ``write_many`` prepares its rows here, before it touches the database, so the yields never
    split a write."""
    async for chunk in in_slices(rows):
        yield [prepare_insert(name, data)[1] for data in chunk]


def prepare_update(name: str, data: Mapping[str, Any]) -> tuple[Table, dict[str, Any]]:
    tbl = table(name)
    values: dict[str, Any] = {}
    for key, value in data.items():
        col = column(tbl, key)
        if key in tbl.primary_key:
            raise ValidationError(f"{tbl.name}.{key} is the primary key and cannot be updated")
        values[key] = coerce(col, value, f"{tbl.name}.{key}")
    _check_constraints(tbl, values, values)
    return tbl, values


def prepare_filters(tbl: Table, filters: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (filters or {}).items():
        col = column(tbl, key)
        if col.kind == "json":
            raise ValidationError(f"cannot filter on JSON column {tbl.name}.{key}")
        out[key] = coerce(col, value, f"filter {tbl.name}.{key}")
    return out


def key_filters(tbl: Table, key: Any) -> dict[str, Any]:
    """Filters selecting the row whose key is ``key`` (``"a:b"`` for two-column primary keys)."""
    if not isinstance(key, str | uuid.UUID):
        raise ValidationError(f"id of {tbl.name} must be a string, got {type(key).__name__}")
    parts = str(key).split(":") if len(tbl.primary_key) > 1 else [str(key)]
    if len(parts) != len(tbl.primary_key):
        raise ValidationError(f"id of {tbl.name} must be {':'.join(tbl.primary_key)}")
    return prepare_filters(tbl, dict(zip(tbl.primary_key, parts, strict=True)))


def row_key(tbl: Table, row: Mapping[str, Any]) -> str:
    return ":".join(str(row[k]) for k in tbl.primary_key)


def prepare_order(tbl: Table, order_by: str | Iterable[str] | None) -> list[tuple[str, bool]]:
    """(column, descending) pairs, ending with the primary key so pages are stable."""
    items = [order_by] if isinstance(order_by, str) else list(order_by or ())
    out: list[tuple[str, bool]] = []
    for item in items:
        if not isinstance(item, str):
            raise ValidationError(f"order_by must be column names, got {type(item).__name__}")
        desc = item.startswith("-")
        col = column(tbl, item[1:] if desc else item)
        if col.kind == "json":
            raise ValidationError(f"cannot order by JSON column {tbl.name}.{col.name}")
        out.append((col.name, desc))
    seen = {c for c, _ in out}
    out.extend((k, False) for k in tbl.primary_key if k not in seen)
    return out


def check_page(limit: int | None, offset: int) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValidationError("limit must be a non-negative integer")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValidationError("offset must be a non-negative integer")
