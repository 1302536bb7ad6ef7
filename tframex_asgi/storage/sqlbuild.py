"""SQL text for the two SQL dialects, built only from schema names; values are always parameters."""

# S608: every identifier in this module's SQL comes from the schema module (never from input);
# values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tframex_asgi.storage.ddl import Dialect, quote
from tframex_asgi.storage.schema import Table

__all__ = ["SQLBuilder"]

Encode = Callable[[str, Any], Any]


class SQLBuilder:
    def __init__(self, dialect: Dialect, encode: Encode, encoded_kinds: frozenset[str]) -> None:
        self.dialect = dialect
        self.encode = encode  # (column kind, canonical value) -> driver value
        self.encoded_kinds = encoded_kinds  # kinds ``encode`` changes; rows without them pass as they are
        self._needs_encoding: dict[str, bool] = {}

    def ph(self, n: int) -> str:
        return "?" if self.dialect == "sqlite" else f"${n}"

    def insert(self, tbl: Table, names: tuple[str, ...], skip_existing: bool) -> str:
        cols = ", ".join(quote(n) for n in names)
        marks = ", ".join(self.ph(i + 1) for i in range(len(names)))
        sql = f"INSERT INTO {quote(tbl.name)} ({cols}) VALUES ({marks})"
        if skip_existing:
            sql += f" ON CONFLICT ({', '.join(quote(k) for k in tbl.primary_key)}) DO NOTHING"
        return sql

    def params(self, tbl: Table, row: Mapping[str, Any], names: tuple[str, ...]) -> tuple[Any, ...]:
        needs = self._needs_encoding.get(tbl.name)
        if needs is None:
            needs = self._needs_encoding[tbl.name] = any(c.kind in self.encoded_kinds for c in tbl.columns)
        if not needs:
            return tuple(row[n] for n in names)  # the driver takes canonical values as they are
        return tuple(self.encode(tbl.by_name[n].kind, row[n]) for n in names)

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
