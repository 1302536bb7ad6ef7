"""The storage contract on top of four driver primitives, shared by SQLite and PostgreSQL."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from tframex_asgi.errors import ValidationError
from tframex_asgi.storage.base import BaseStorage, Row
from tframex_asgi.storage.keyset import prepare_keyset
from tframex_asgi.storage.schema import Table, column, no_action_referrers, table
from tframex_asgi.storage.sqlbuild import SQLBuilder
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

__all__ = ["SQLStorage"]


class SQLStorage(BaseStorage):
    builder: SQLBuilder

    @abstractmethod
    async def _execute_all(self, statements: list[tuple[str, Sequence[Any]]]) -> int:
        """Run statements in one transaction; the number of rows the last one changed."""

    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        return await self._execute_all([(sql, params)])

    @abstractmethod
    async def _execute_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Run one statement for every parameter tuple, all in one transaction."""

    @abstractmethod
    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]: ...

    @abstractmethod
    def _decode(self, tbl: Table, raw: Sequence[Any]) -> Row: ...

    async def write(self, table: str, data: Mapping[str, Any]) -> str:
        return (await self.write_many(table, [data]))[0]

    async def write_many(
        self, table: str, rows: Sequence[Mapping[str, Any]], *, skip_existing: bool = False
    ) -> list[str]:
        tbl = _table(table)
        prepared, values = await self._prepared_params(tbl, rows)
        if not prepared:
            return []
        await self._execute_many(self.builder.insert(tbl, self.builder.columns(tbl), skip_existing), values)
        return [row["id"] if tbl.has_id else row_key(tbl, row) for row in prepared]

    async def _prepared_params(
        self, tbl: Table, rows: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
        """The canonical rows and their driver parameters, chunk by chunk (see prepared_chunks)."""
        names = self.builder.columns(tbl)
        params = self.builder.params
        prepared: list[dict[str, Any]] = []
        values: list[tuple[Any, ...]] = []
        async for chunk in prepared_chunks(tbl.name, rows):
            prepared.extend(chunk)
            values.extend([params(tbl, row, names) for row in chunk])
        return prepared, values

    async def update(self, table: str, id: str, data: Mapping[str, Any]) -> bool:
        tbl, values = prepare_update(table, data)
        key = key_filters(tbl, id)
        if not values:
            return await self.count(tbl.name, key) > 0
        sql, params = self.builder.update(tbl, values, key)
        return await self._execute(sql, params) > 0

    async def delete(self, table: str, id: str) -> bool:
        tbl = _table(table)
        sql, params = self.builder.delete(tbl, key_filters(tbl, id))
        return await self._execute(sql, params) > 0

    async def delete_where(self, table: str, filters: Mapping[str, Any]) -> int:
        tbl = _table(table)
        if not filters:
            raise ValidationError("delete_where needs at least one filter")
        sql, params = self.builder.delete(tbl, prepare_filters(tbl, filters))
        return await self._execute(sql, params)

    async def delete_older_than(self, table: str, column_name: str, cutoff: datetime) -> int:
        tbl = _table(table)
        col = column(tbl, column_name)
        if col.kind != "timestamp":
            raise ValidationError(f"{tbl.name}.{col.name} is not a TIMESTAMP column")
        limit = coerce(col, cutoff, "cutoff")
        # Rows that merely point at a pruned row (no ON DELETE CASCADE) outlive it, unlinked.
        unlink = [
            self.builder.unlink_before(child, ref, tbl, col.name, limit) for child, ref in no_action_referrers(tbl)
        ]
        return await self._execute_all([*unlink, self.builder.delete_before(tbl, col.name, limit)])

    async def read(
        self,
        table: str,
        filters: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str | Iterable[str] | None = None,
    ) -> list[Row]:
        tbl = _table(table)
        wanted = prepare_filters(tbl, filters)
        order = prepare_order(tbl, order_by)
        check_page(limit, offset)
        sql, params = self.builder.select(tbl, wanted, order, limit, offset)
        return [self._decode(tbl, raw) for raw in await self._fetch(sql, params)]

    async def read_page(
        self,
        table: str,
        filters: Mapping[str, Any] | None = None,
        *,
        order_by: Sequence[str],
        after: Sequence[Any] | None = None,
        bounds: Mapping[str, tuple[Any, Any]] | None = None,
        limit: int,
        offset: int = 0,
    ) -> list[Row]:
        tbl = _table(table)
        query = prepare_keyset(tbl, filters, order_by, after, bounds, limit, offset)
        sql, params = self.builder.keyset(query)
        return [self._decode(tbl, raw) for raw in await self._fetch(sql, params)]

    async def count(self, table: str, filters: Mapping[str, Any] | None = None) -> int:
        tbl = _table(table)
        sql, params = self.builder.count(tbl, prepare_filters(tbl, filters))
        rows = await self._fetch(sql, params)
        return int(rows[0][0])


def _table(name: str) -> Table:
    return table(name)
