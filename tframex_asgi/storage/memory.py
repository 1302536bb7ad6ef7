"""``memory://``: the schema's rules (keys, unique, foreign keys, cascades) on Python dicts.

For development and tests; it behaves like the SQL backends so code tested against it works
unchanged on them. Every method runs without awaiting, so each call is atomic on the loop.
Lookups go through the primary key or a secondary index (:mod:`~tframex_asgi.storage.memindex`),
so their cost does not grow with the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from tframex_asgi.errors import ConflictError, ValidationError
from tframex_asgi.storage.base import BaseStorage, Row
from tframex_asgi.storage.codec import decode_json_columns
from tframex_asgi.storage.memindex import TableIndexes
from tframex_asgi.storage.schema import TABLES, Table, column, no_action_referrers, table
from tframex_asgi.storage.validate import (
    check_page,
    coerce,
    key_filters,
    prepare_filters,
    prepare_order,
    prepare_update,
    prepared_chunks,
    row_key,
)

__all__ = ["InMemoryStorage", "MemoryStorage"]

# (child table, column, cascade) for every foreign key pointing at a table.
_REFERRERS: dict[str, list[tuple[Table, str, bool]]] = {name: [] for name in TABLES}
for _t in TABLES.values():
    for _c in _t.columns:
        if _c.references:
            _REFERRERS[_c.references.table].append((_t, _c.name, _c.references.on_delete == "cascade"))


def _matches(row: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    return all(row[k] == v for k, v in filters.items())


def _null_last(name: str, row: Row) -> tuple[bool, Any]:
    return (row[name] is None, row[name])


def sort_rows(rows: list[Row], order: list[tuple[str, bool]]) -> list[Row]:
    """SQL order: ascending puts NULLs last, descending first (PostgreSQL's default)."""
    for name, desc in reversed(order):
        rows.sort(key=partial(_null_last, name), reverse=desc)
    return rows


class MemoryStorage(BaseStorage):
    def __init__(self, url: str = "memory://", config: object = None) -> None:
        self.url = url
        self._rows: dict[str, dict[str, Row]] = {name: {} for name in TABLES}
        self._index = {name: TableIndexes(tbl, self._rows[name]) for name, tbl in TABLES.items()}

    async def ping(self) -> bool:
        return True

    # -- constraint checks -------------------------------------------------------------
    def _check_refs(self, tbl: Table, row: Mapping[str, Any], names: Iterable[str]) -> None:
        for name in names:
            ref = tbl.by_name[name].references
            value = row.get(name)
            if ref is not None and value is not None and value not in self._rows[ref.table]:
                raise ConflictError(
                    f"{tbl.name}.{name} = {value} references a missing {ref.table} row", code="foreign_key"
                )

    def _check_unique(self, tbl: Table, row: Mapping[str, Any], names: Iterable[str], skip: str | None) -> None:
        for name in names:
            if not tbl.by_name[name].unique or row.get(name) is None:
                continue
            if any(key != skip for key in self._index[tbl.name].keys(name, row[name])):
                raise ConflictError(f"duplicate {tbl.name}.{name}: {row[name]!r}")

    # -- writes ------------------------------------------------------------------------
    async def write(self, table: str, data: Mapping[str, Any]) -> str:
        return (await self.write_many(table, [data]))[0]

    async def write_many(
        self, table: str, rows: Sequence[Mapping[str, Any]], *, skip_existing: bool = False
    ) -> list[str]:
        tbl = table_of(table)
        prepared = [row async for chunk in prepared_chunks(tbl.name, rows) for row in chunk]
        if not prepared:
            return []
        store = self._rows[tbl.name]
        staged: dict[str, Row] = {}
        # Unique values taken by earlier rows of this batch, per column.
        taken: dict[str, set[Any]] = {}
        ids: list[str] = []
        for row in prepared:
            key = row_key(tbl, row)
            ids.append(row["id"] if tbl.has_id else key)
            if key in store or key in staged:
                if skip_existing:
                    continue
                raise ConflictError(f"duplicate key in {tbl.name}: {key}")
            self._check_refs(tbl, row, row)
            self._check_unique(tbl, row, row, None)
            for name, value in row.items():
                if value is not None and tbl.by_name[name].unique:
                    seen = taken.setdefault(name, set())
                    if value in seen:
                        raise ConflictError(f"duplicate {tbl.name}.{name}: {value!r}")
                    seen.add(value)
            staged[key] = row
        store.update(staged)  # all or nothing, like one transaction
        index = self._index[tbl.name]
        for key, row in staged.items():
            index.add(key, row)
        return ids

    async def update(self, table: str, id: str, data: Mapping[str, Any]) -> bool:
        tbl, values = prepare_update(table, data)
        key = row_key(tbl, key_filters(tbl, id))
        row = self._rows[tbl.name].get(key)
        if row is None:
            return False
        self._check_refs(tbl, values, values)
        self._check_unique(tbl, values, values, key)
        self._index[tbl.name].change(key, row, values)
        row.update(values)
        return True

    def _doomed(self, tbl: Table, keys: set[str]) -> dict[str, set[str]]:
        """Every row a delete removes, cascades included; refuses when a NO ACTION reference remains."""
        doomed: dict[str, set[str]] = {name: set() for name in TABLES}
        todo = [(tbl, k) for k in keys]
        while todo:
            parent, key = todo.pop()
            if key in doomed[parent.name]:
                continue
            doomed[parent.name].add(key)
            for child, col, cascade in _REFERRERS[parent.name] if parent.has_id else ():
                if cascade:
                    todo.extend((child, k) for k in self._index[child.name].keys(col, key))
        for name, gone in doomed.items():
            for child, col, cascade in _REFERRERS[name] if gone else ():
                if cascade:
                    continue
                index = self._index[child.name]
                for parent_key in gone:
                    if any(k not in doomed[child.name] for k in index.keys(col, parent_key)):
                        raise ConflictError(
                            f"{name} row {parent_key} is still referenced by {child.name}.{col}", code="foreign_key"
                        )
        return doomed

    def _remove(self, tbl: Table, keys: set[str]) -> int:
        for name, gone in self._doomed(tbl, keys).items():
            rows, index = self._rows[name], self._index[name]
            for k in gone:
                row = rows.pop(k, None)
                if row is not None:
                    index.remove(k, row)
        return len(keys)

    async def delete(self, table: str, id: str) -> bool:
        tbl = table_of(table)
        key = row_key(tbl, key_filters(tbl, id))
        if key not in self._rows[tbl.name]:
            return False
        return self._remove(tbl, {key}) == 1

    async def delete_where(self, table: str, filters: Mapping[str, Any]) -> int:
        tbl = table_of(table)
        if not filters:
            raise ValidationError("delete_where needs at least one filter")
        wanted = prepare_filters(tbl, filters)
        return self._remove(tbl, {row_key(tbl, r) for r in self._candidates(tbl, wanted) if _matches(r, wanted)})

    async def delete_older_than(self, table: str, column_name: str, cutoff: datetime) -> int:
        tbl = table_of(table)
        col = column(tbl, column_name)
        if col.kind != "timestamp":
            raise ValidationError(f"{tbl.name}.{col.name} is not a TIMESTAMP column")
        limit = coerce(col, cutoff, "cutoff")
        keys = {k for k, r in self._rows[tbl.name].items() if r[col.name] is not None and r[col.name] < limit}
        for child, ref in no_action_referrers(tbl):
            rows, index = self._rows[child.name], self._index[child.name]
            for parent_key in keys:
                for k in list(index.keys(ref, parent_key)):
                    # rows that merely point at a pruned row outlive it, unlinked
                    index.change(k, rows[k], {ref: None})
                    rows[k][ref] = None
        return self._remove(tbl, keys)

    # -- reads -------------------------------------------------------------------------
    async def read(
        self,
        table: str,
        filters: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str | Iterable[str] | None = None,
    ) -> list[Row]:
        tbl = table_of(table)
        wanted = prepare_filters(tbl, filters)
        order = prepare_order(tbl, order_by)
        check_page(limit, offset)
        rows = [r for r in self._candidates(tbl, wanted) if _matches(r, wanted)]
        sort_rows(rows, order)
        end = None if limit is None else offset + limit
        return [decode_json_columns(tbl, dict(r)) for r in rows[offset:end]]

    async def count(self, table: str, filters: Mapping[str, Any] | None = None) -> int:
        tbl = table_of(table)
        wanted = prepare_filters(tbl, filters)
        return sum(1 for r in self._candidates(tbl, wanted) if _matches(r, wanted))

    def _candidates(self, tbl: Table, wanted: Mapping[str, Any]) -> Iterable[Row]:
        # A filter on the whole primary key is a dict lookup; any other one an index lookup.
        if all(wanted.get(k) is not None for k in tbl.primary_key):
            row = self._rows[tbl.name].get(row_key(tbl, wanted))
            return () if row is None else (row,)
        return self._index[tbl.name].candidates(wanted)


def table_of(name: str) -> Table:
    return table(name)


# The seed's name for this backend.
InMemoryStorage = MemoryStorage
