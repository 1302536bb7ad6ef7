"""PostgreSQL with streaming read replicas (``persistence.replica_urls``).

Every write (and migrations) goes to the primary. Reads (``read``, ``count``, paging) go to the
replicas in turn, except reads-your-writes: a read made within ``read_your_writes`` seconds after
a write *in the same request* (the same asyncio context: a request's task and what it awaits) goes
to the primary, so a handler that writes and then reads back never sees the replica's lag. Other
requests may see a write once the replica has replayed it (usually milliseconds).

A replica that cannot be reached is skipped for ``COOLDOWN`` seconds and the read goes to the
primary: replicas add capacity, never a way to fail.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from tframex_asgi.config.persistence import PersistenceConfig
from tframex_asgi.errors import StorageError
from tframex_asgi.storage.postgres import PostgresStorage, _keep_session, translate
from tframex_asgi.storage.schema import Table

__all__ = ["ReplicatedPostgresStorage"]

logger = logging.getLogger("tframex_asgi.storage")
COOLDOWN = 5.0  # seconds a failed replica is skipped
_DRIVER_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
# Monotonic time of the last write made in this context, per storage instance (by id).
_last_write: ContextVar[dict[int, float] | None] = ContextVar("tframex_asgi_last_write", default=None)
# Set while a query must see the primary itself (health check, schema version).
_on_primary: ContextVar[bool] = ContextVar("tframex_asgi_on_primary", default=False)


def _replica_trouble(exc: asyncpg.PostgresError) -> bool:
    """Connection exceptions (08), shutdown/start-up (57) and recovery conflicts (40001): the
    replica's state, not the query's fault."""
    state = str(getattr(exc, "sqlstate", "") or "")
    return state.startswith(("08", "57")) or state == "40001"


class ReplicatedPostgresStorage(PostgresStorage):
    def __init__(self, url: str, config: PersistenceConfig) -> None:
        super().__init__(url, config)
        self.replica_dsns = tuple(config.replica_urls)
        self.read_your_writes = config.read_your_writes
        self.replicas: list[Any] = []
        self._turn = itertools.count()
        self._down_until: dict[int, float] = {}
        self.replica_reads = 0  # reads a replica answered (for tests and metrics)

    async def connect(self) -> None:
        if self.pool is not None:
            return
        await super().connect()
        for dsn in self.replica_dsns:
            try:
                replica = await asyncpg.create_pool(
                    dsn, min_size=0, max_size=self.max_size, timeout=10, reset=_keep_session
                )
            except _DRIVER_ERRORS as exc:
                await self.close()
                raise StorageError(f"cannot connect to a read replica: {type(exc).__name__}: {exc}") from exc
            self.replicas.append(replica)

    async def close(self) -> None:
        replicas, self.replicas = self.replicas, []
        for replica in replicas:
            await replica.close()
        await super().close()

    # -- writes mark the context ----------------------------------------------------------

    def _wrote(self) -> None:
        marks = _last_write.get()
        if marks is None:
            marks = {}
            _last_write.set(marks)
        marks[id(self)] = time.monotonic()

    async def _execute_all(self, statements: list[tuple[str, Sequence[Any]]]) -> int:
        try:
            return await super()._execute_all(statements)
        finally:
            self._wrote()

    async def _execute_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            await super()._execute_many(sql, rows)
        finally:
            self._wrote()

    async def copy_rows(self, tbl: Table, names: tuple[str, ...], rows: list[tuple[Any, ...]], skip: bool) -> None:
        try:
            await super().copy_rows(tbl, names, rows, skip)
        finally:
            self._wrote()

    # -- the primary's own health and schema are never a replica's -------------------------

    async def ping(self) -> bool:
        token = _on_primary.set(True)
        try:
            return await super().ping()  # /readyz: can we write? A live replica does not say so
        finally:
            _on_primary.reset(token)

    async def schema_version(self) -> int:
        token = _on_primary.set(True)
        try:
            return await super().schema_version()
        finally:
            _on_primary.reset(token)

    # -- reads go to a replica ------------------------------------------------------------

    def _recently_wrote(self, now: float) -> bool:
        marks = _last_write.get()
        wrote = marks.get(id(self)) if marks else None
        return wrote is not None and now - wrote < self.read_your_writes

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        now = time.monotonic()
        if not self.replicas or _on_primary.get() or self._recently_wrote(now):
            return await super()._fetch(sql, params)
        for _ in range(len(self.replicas)):
            index = next(self._turn) % len(self.replicas)
            if self._down_until.get(index, 0.0) > now:
                continue
            try:
                rows = list(await self.replicas[index].fetch(sql, *params))
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresError) as exc:
                if isinstance(exc, asyncpg.PostgresError) and not _replica_trouble(exc):
                    raise translate(exc) from exc  # the query's own fault: the primary would say the same
                logger.warning("read replica %d failed (%s): reading from the primary", index, type(exc).__name__)
                self._down_until[index] = now + COOLDOWN
                continue
            self.replica_reads += 1
            return rows
        return await super()._fetch(sql, params)
