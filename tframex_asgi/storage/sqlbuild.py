"""SQL text for the two SQL dialects, built only from schema names; values are always parameters."""

# S608: every identifier in this module's SQL comes from the schema module (never from input);
# values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from tframex_asgi.storage.ddl import Dialect, quote
from tframex_asgi.storage.keyset import KeysetQuery
from tframex_asgi.storage.schema import Table

__all__ = ["SQLBuilder"]

Encode = Callable[[str, Any], Any]
# (column names, row -> tuple of their values, (position, kind) of the columns to encode)
_Plan = tuple[tuple[str, ...], Callable[[Mapping[str, Any]], Any], tuple[tuple[int, str], ...]]


class SQLBuilder:
    def __init__(self, dialect: Dialect, encode: Encode, encoded_kinds: frozenset[str]) -> None:
        self.dialect = dialect
        self.encode = encode  # (column kind, canonical value) -> driver value
        self.encoded_kinds = encoded_kinds  # kinds ``encode`` changes; rows without them pass as they are
        # Per table: its column names, and (position, kind) of the columns ``encode`` changes.
        self._plans: dict[str, _Plan] = {}

    def ph(self, n: int) -> str:
        return "?" if self.dialect == "sqlite" else f"${n}"

    def insert(self, tbl: Table, names: tuple[str, ...], skip_existing: bool) -> str:
        cols = ", ".join(quote(n) for n in names)
        marks = ", ".join(self.ph(i + 1) for i in range(len(names)))
        sql = f"INSERT INTO {quote(tbl.name)} ({cols}) VALUES ({marks})"
        if skip_existing:
            sql += f" ON CONFLICT ({', '.join(quote(k) for k in tbl.primary_key)}) DO NOTHING"
        return sql

    def _plan(self, tbl: Table) -> _Plan:
        plan = self._plans.get(tbl.name)
        if plan is None:
            names = tuple(c.name for c in tbl.columns)
            encoded = tuple((i, c.kind) for i, c in enumerate(tbl.columns) if c.kind in self.encoded_kinds)
            getter = operator.itemgetter(*names)
            # itemgetter of one name returns the value itself, not a 1-tuple.
            get = getter if len(names) > 1 else (lambda row: (getter(row),))
            plan = self._plans[tbl.name] = (names, get, encoded)
        return plan

    def columns(self, tbl: Table) -> tuple[str, ...]:
        """Every column of ``tbl`` in schema order (the same tuple each time)."""
        return self._plan(tbl)[0]

    def params(self, tbl: Table, row: Mapping[str, Any], names: tuple[str, ...]) -> tuple[Any, ...]:
        all_names, get, encoded = self._plan(tbl)
        if names is not all_names and names != all_names:
            return tuple(self.encode(tbl.by_name[n].kind, row[n]) for n in names)
        values = get(row)
        if not encoded:
            return tuple(values)  # the driver takes canonical values as they are
        out = list(values)
        encode = self.encode
        for i, kind in encoded:
            value = out[i]
            if value is not None:
                out[i] = encode(kind, value)
        return tuple(out)

    def where(self, tbl: Table, filters: Mapping[str, Any], params: list[Any]) -> str:
        parts = []
        for name, value in filters.items():
            if value is None:
                parts.append(f"{quote(name)} IS NULL")
            else:
                params.append(self.encode(tbl.by_name[name].kind, value))
                parts.append(f"{quote(name)} = {self.ph(len(params))}")
        return (" WHERE " + " AND ".join(parts)) if parts else ""

    def order(self, tbl: Table, order: list[tuple[str, bool]]) -> str:
        items = []
        for name, desc in order:
            expr = quote(name)
            # PostgreSQL sorts text by the database locale; "C" gives code-point order like
            # SQLite and Python, so every backend pages identically.
            if self.dialect == "postgresql" and tbl.by_name[name].kind in ("varchar", "text"):
                expr += ' COLLATE "C"'
            items.append(expr + (" DESC NULLS FIRST" if desc else " ASC NULLS LAST"))
        return " ORDER BY " + ", ".join(items)

    def select(
        self,
        tbl: Table,
        filters: Mapping[str, Any],
        order: list[tuple[str, bool]],
        limit: int | None,
        offset: int,
    ) -> tuple[str, list[Any]]:
        params: list[Any] = []
        cols = ", ".join(quote(c.name) for c in tbl.columns)
        sql = f"SELECT {cols} FROM {quote(tbl.name)}" + self.where(tbl, filters, params) + self.order(tbl, order)
        if limit is not None or offset:
            params.append(-1 if limit is None and self.dialect == "sqlite" else limit)
            sql += f" LIMIT {self.ph(len(params))}"
            params.append(offset)
            sql += f" OFFSET {self.ph(len(params))}"
        return sql, params

    def keyset(self, query: KeysetQuery) -> tuple[str, list[Any]]:
        """One keyset page. The key is compared as a row value, ``(a, b) < ($1, $2)``, and ordered
        without NULLS FIRST/LAST or COLLATE (the key columns are never NULL on a page, and never
        text), so both databases read it as a range of an index on (filters..., key...)."""
        tbl = query.table
        params: list[Any] = []
        where = self.where(tbl, query.filters, params)
        parts = [where[len(" WHERE ") :]] if where else []
        parts += [f"{quote(name)} IS NOT NULL" for name in query.order if name not in tbl.primary_key]
        for name, (low, high) in query.bounds.items():
            kind = tbl.by_name[name].kind
            for value, op in ((low, ">="), (high, "<=")):
                if value is not None:
                    params.append(self.encode(kind, value))
                    parts.append(f"{quote(name)} {op} {self.ph(len(params))}")
        key = ", ".join(quote(name) for name in query.order)
        if query.after is not None:
            marks = []
            for name, value in zip(query.order, query.after, strict=True):
                params.append(self.encode(tbl.by_name[name].kind, value))
                marks.append(self.ph(len(params)))
            op = "<" if query.descending else ">"
            parts.append(f"({key}) {op} ({', '.join(marks)})")
        direction = " DESC" if query.descending else " ASC"
        cols = ", ".join(quote(c.name) for c in tbl.columns)
        sql = f"SELECT {cols} FROM {quote(tbl.name)}"
        if parts:
            sql += " WHERE " + " AND ".join(parts)
        sql += " ORDER BY " + ", ".join(quote(name) + direction for name in query.order)
        params.append(query.limit)
        sql += f" LIMIT {self.ph(len(params))}"
        if query.offset:
            params.append(query.offset)
            sql += f" OFFSET {self.ph(len(params))}"
        return sql, params

    def count(self, tbl: Table, filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
        params: list[Any] = []
        return f"SELECT COUNT(*) FROM {quote(tbl.name)}" + self.where(tbl, filters, params), params

    def update(self, tbl: Table, values: Mapping[str, Any], key: Mapping[str, Any]) -> tuple[str, list[Any]]:
        params: list[Any] = []
        sets = []
        for name, value in values.items():
            params.append(self.encode(tbl.by_name[name].kind, value))
            sets.append(f"{quote(name)} = {self.ph(len(params))}")
        return f"UPDATE {quote(tbl.name)} SET {', '.join(sets)}" + self.where(tbl, key, params), params

    def delete(self, tbl: Table, filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
        params: list[Any] = []
        return f"DELETE FROM {quote(tbl.name)}" + self.where(tbl, filters, params), params

    def delete_before(self, tbl: Table, column: str, cutoff: Any) -> tuple[str, list[Any]]:
        return (
            f"DELETE FROM {quote(tbl.name)} WHERE {quote(column)} < {self.ph(1)}",
            [self.encode("timestamp", cutoff)],
        )

    def unlink_before(self, child: Table, ref: str, parent: Table, column: str, cutoff: Any) -> tuple[str, list[Any]]:
        """NULL ``child.ref`` where it points at a ``parent`` row older than ``cutoff``."""
        return (
            f"UPDATE {quote(child.name)} SET {quote(ref)} = NULL WHERE {quote(ref)} IN "
            f"(SELECT {quote('id')} FROM {quote(parent.name)} WHERE {quote(column)} < {self.ph(1)})",
            [self.encode("timestamp", cutoff)],
        )
