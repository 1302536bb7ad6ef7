"""The storage contract every backend implements (the seed's four methods plus what users need).

Backends are chosen by URL scheme (see :func:`tframex_asgi.storage.open_storage`). Table and
column names are checked against the schema before they reach a backend; values are always
bound parameters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from tframex_asgi.storage.keyset import apply_keyset, prepare_keyset
from tframex_asgi.storage.schema import table as schema_table

__all__ = ["BaseStorage", "Row"]

Row = dict[str, Any]


class BaseStorage(ABC):
    """Async storage of rows in the seed's tables.

    ``order_by`` is a column name, prefixed with ``-`` for descending order. ``filters`` maps
    column names to values (equality; ``None`` matches NULL). Ids are strings (UUIDs); ``write``
    generates one when the row has no ``id``.
    """

    url: str
    # False on stores without relational constraints (S3): unique and foreign keys are not checked.
    enforces_constraints: bool = True

    async def connect(self) -> None:
        """Open pools/connections and apply migrations when configured. Idempotent."""

    async def close(self) -> None:
        """Release everything; safe to call on a storage that never connected."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when the backend answers."""

    @abstractmethod
    async def write(self, table: str, data: Mapping[str, Any]) -> str:
        """Insert one row and return its id."""

    @abstractmethod
    async def write_many(
        self, table: str, rows: Sequence[Mapping[str, Any]], *, skip_existing: bool = False
    ) -> list[str]:
        """Insert rows in one batch (one transaction where the backend has them).

        ``skip_existing`` ignores rows whose primary key is already stored (replays are
        idempotent: ``ON CONFLICT (id) DO NOTHING``); other conflicts still raise.
        """

    @abstractmethod
    async def read(
        self,
        table: str,
        filters: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str | Iterable[str] | None = None,
    ) -> list[Row]:
        """Rows matching every filter."""

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
        """A keyset page (see :mod:`~tframex_asgi.storage.keyset`): rows matching ``filters``,
        within the inclusive ``bounds`` (column -> (lowest, highest), None for open), ordered by
        ``order_by`` (columns all ascending or all descending, ``-`` for descending) and strictly
        after the row whose key is ``after``. Rows with a NULL key column are on no page.

        The SQL backends answer with one index range scan where an index starts with the filter
        columns followed by the key; this default (memory, S3) filters in Python.
        """

        query = prepare_keyset(schema_table(table), filters, order_by, after, bounds, limit, offset)
        return apply_keyset(await self.read(table, query.filters), query)

    @abstractmethod
    async def update(self, table: str, id: str, data: Mapping[str, Any]) -> bool:
        """Update one row by id; False when there is no such row."""

    @abstractmethod
    async def delete(self, table: str, id: str) -> bool:
        """Delete one row by id; False when there is no such row."""

    @abstractmethod
    async def count(self, table: str, filters: Mapping[str, Any] | None = None) -> int:
        """How many rows match."""

    @abstractmethod
    async def delete_where(self, table: str, filters: Mapping[str, Any]) -> int:
        """Delete every row matching ``filters`` (which must not be empty); returns how many."""

    @abstractmethod
    async def delete_older_than(self, table: str, column: str, cutoff: datetime) -> int:
        """Delete rows whose TIMESTAMP ``column`` is before ``cutoff`` (retention); returns how many."""

    async def migrate(self) -> list[int]:
        """Apply pending schema migrations; returns the versions applied (none for schemaless stores)."""
        return []

    async def schema_version(self) -> int:
        """The highest applied migration."""
        return 0

    async def __aenter__(self) -> BaseStorage:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
