"""Secondary indexes for ``memory://``: column value -> row keys, so lookups do not scan.

Without them every lookup by a non-key column (an API key's prefix, a user's roles, a
conversation's messages) and every unique or foreign-key check walked the whole table: 61 ms
per uncached request with 100k API keys, and writing those keys took minutes (each write
scanned every earlier row). Unique and foreign-key columns are indexed from the start (the
writes and cascades need them); any other column gets its index the first time it is filtered
on, and keeps it. Reads always sort by at least the primary key, so the order of a bucket
never shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tframex_asgi.storage.base import Row
from tframex_asgi.storage.schema import Table

__all__ = ["TableIndexes"]

_EMPTY: frozenset[str] = frozenset()


class TableIndexes:
    """The indexes of one table over ``rows`` (the table's key -> row dict, owned by the storage)."""

    def __init__(self, tbl: Table, rows: dict[str, Row]) -> None:
        self.rows = rows
        self.by_column: dict[str, dict[Any, set[str]]] = {}
        for col in tbl.columns:
            if col.unique or col.references is not None:
                self.ensure(col.name)

    def ensure(self, name: str) -> dict[Any, set[str]]:
        index = self.by_column.get(name)
        if index is None:  # built once from the rows already there, then kept up to date
            index = {}
            for key, row in self.rows.items():
                index.setdefault(row[name], set()).add(key)
            self.by_column[name] = index
        return index

    def keys(self, name: str, value: Any) -> set[str] | frozenset[str]:
        """The keys of the rows whose ``name`` equals ``value`` (do not mutate the result)."""
        return self.ensure(name).get(value, _EMPTY)

    def add(self, key: str, row: Mapping[str, Any]) -> None:
        for name, index in self.by_column.items():
            index.setdefault(row[name], set()).add(key)

    def remove(self, key: str, row: Mapping[str, Any]) -> None:
        for name, index in self.by_column.items():
            _discard(index, row[name], key)

    def change(self, key: str, row: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        """Call before ``row.update(values)``."""
        for name, value in values.items():
            index = self.by_column.get(name)
            if index is not None and row[name] != value:
                _discard(index, row[name], key)
                index.setdefault(value, set()).add(key)

    def candidates(self, wanted: Mapping[str, Any]) -> Iterable[Row]:
        """Rows that may match every filter of ``wanted``: the smallest bucket among them."""
        best: set[str] | frozenset[str] | None = None
        for name, value in wanted.items():
            bucket = self.keys(name, value)
            if best is None or len(bucket) < len(best):
                best = bucket
                if not best:
                    return ()
        if best is None:
            return self.rows.values()
        rows = self.rows
        return [rows[k] for k in best]


def _discard(index: dict[Any, set[str]], value: Any, key: str) -> None:
    bucket = index.get(value)
    if bucket is not None:
        bucket.discard(key)
        if not bucket:
            del index[value]
