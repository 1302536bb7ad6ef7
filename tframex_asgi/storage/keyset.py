"""Keyset (seek) reads: a page of rows strictly after the last row of the previous page.

``LIMIT n OFFSET k`` reads and throws away ``k`` rows, and a time window filtered in Python scans
every newer row; a keyset read asks the index for "the next ``n`` rows after (created_at, id)",
so page 1,000 of a 1M-row table costs what page 1 does. The SQL backends compile a
:class:`KeysetQuery` to one index range scan (:meth:`SQLBuilder.keyset
<tframex_asgi.storage.sqlbuild.SQLBuilder.keyset>`); the schemaless stores (memory, S3) filter
and sort in Python with :func:`apply_keyset`, which has the same semantics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tframex_asgi.errors import ValidationError
from tframex_asgi.storage.schema import Table, column
from tframex_asgi.storage.validate import check_page, coerce, prepare_filters

__all__ = ["KeysetQuery", "apply_keyset", "prepare_keyset"]

# Kinds a keyset can order by: they compare the same in SQLite, PostgreSQL and Python (text would
# need one collation everywhere, and its index would have to carry it).
_ORDERABLE = frozenset({"timestamp", "uuid", "int", "bigint"})


@dataclass(frozen=True, slots=True)
class KeysetQuery:
    table: Table
    filters: dict[str, Any]  # column -> canonical value (equality; None matches NULL)
    order: tuple[str, ...]  # the key columns, every one in the same direction
    descending: bool
    after: tuple[Any, ...] | None  # the key of the last row already seen (canonical values)
    bounds: dict[str, tuple[Any, Any]]  # column -> (lowest, highest), inclusive, either may be None
    limit: int
    offset: int


def prepare_keyset(
    tbl: Table,
    filters: Mapping[str, Any] | None,
    order_by: Sequence[str],
    after: Sequence[Any] | None,
    bounds: Mapping[str, tuple[Any, Any]] | None,
    limit: int,
    offset: int,
) -> KeysetQuery:
    """Check every name against the schema and every value against its column (4xx, never a driver error)."""
    if isinstance(order_by, str) or not order_by:
        raise ValidationError("order_by of a keyset read must be a non-empty sequence of columns")
    directions = {name.startswith("-") for name in order_by}
    if len(directions) != 1:
        raise ValidationError("every column of a keyset order must have the same direction")
    names = tuple(name.removeprefix("-") for name in order_by)
    for name in names:
        col = column(tbl, name)
        if col.kind not in _ORDERABLE:
            raise ValidationError(f"cannot page by {col.kind} column {tbl.name}.{name}")
    key: tuple[Any, ...] | None = None
    if after is not None:
        if len(after) != len(names) or any(v is None for v in after):
            raise ValidationError(f"after must give a value for each of {', '.join(names)}")
        key = tuple(coerce(tbl.by_name[n], v, f"after {tbl.name}.{n}") for n, v in zip(names, after, strict=True))
    ranges: dict[str, tuple[Any, Any]] = {}
    for name, (low, high) in (bounds or {}).items():
        col = column(tbl, name)
        where = f"bound {tbl.name}.{name}"
        ranges[name] = (coerce(col, low, where), coerce(col, high, where))
    check_page(limit, offset)
    return KeysetQuery(tbl, prepare_filters(tbl, filters), names, directions.pop(), key, ranges, limit, offset)


def apply_keyset(rows: Iterable[Mapping[str, Any]], query: KeysetQuery) -> list[dict[str, Any]]:
    """The page ``query`` selects from ``rows`` (already matching its equality filters)."""
    out = []
    for row in rows:
        if any(row.get(n) is None for n in query.order):
            continue  # as in SQL: a NULL key never compares, so it is on no page
        if any(not _within(row.get(n), low, high) for n, (low, high) in query.bounds.items()):
            continue
        if query.after is not None:
            key = tuple(row[n] for n in query.order)
            if (key >= query.after) if query.descending else (key <= query.after):
                continue
        out.append(dict(row))
    out.sort(key=lambda r: tuple(r[n] for n in query.order), reverse=query.descending)
    return out[query.offset : query.offset + query.limit]


def _within(value: Any, low: Any, high: Any) -> bool:
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)
