"""``postgresql://...`` on an asyncpg pool.

Batches go through ``executemany`` (one round trip per batch, ~90x row-by-row INSERTs); large
batches through COPY into a temporary table, then one INSERT ... SELECT that keeps
``ON CONFLICT DO NOTHING`` semantics for replays.
"""

# S608: every identifier in this module's SQL comes from the schema module (never from input);
# values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import decimal
import ipaddress
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]

from tframex_asgi.errors import ConflictError, StorageError, ValidationError
from tframex_asgi.storage.base import Row
from tframex_asgi.storage.ddl import LATEST, MIGRATIONS, VERSION_TABLE, migration_statements, quote
from tframex_asgi.storage.schema import TABLES, Table
from tframex_asgi.storage.schema import table as schema_table
from tframex_asgi.storage.sqlbase import SQLStorage
from tframex_asgi.storage.sqlbuild import SQLBuilder
from tframex_asgi.storage.unavailable import storage_unavailable
from tframex_asgi.storage.validate import PREPARE_CHUNK, in_slices, row_key

if TYPE_CHECKING:
    from tframex_asgi.config.persistence import PersistenceConfig

__all__ = ["COPY_THRESHOLD", "DRIVER_ERRORS", "PostgreSQLStorage", "PostgresStorage", "translate"]

COPY_THRESHOLD = 1000  # rows; below this, executemany is as fast and simpler


async def _in_chunks(rows: list[tuple[Any, ...]]) -> AsyncIterator[tuple[Any, ...]]:
    """COPY's records with a return to the event loop every PREPARE_CHUNK rows (in_slices). asyncpg
    encodes a list in one go without yielding, and a write-queue batch of audit rows (a thousand
    and more under load) held the loop for 6-8 ms: the requests waiting behind it made the p99."""
    async for chunk in in_slices(rows):
        for row in chunk:
            yield row


_MIGRATION_LOCK = 0x7F3A_0001  # pg_advisory_xact_lock key: one migrator per database at a time


def _inet(value: Any) -> str:
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        full = value.network.prefixlen == value.ip.max_prefixlen
        return str(value.ip) if full else str(value)
    return str(value)


# asyncpg's own jsonb codec takes and returns text: values arrive as canonical JSON text already.
_DECODERS: dict[str, Callable[[Any], Any]] = {"uuid": str, "decimal": float, "inet": _inet, "json": json.loads}


def _encode(kind: str, value: Any) -> Any:
    if value is None:
        return None
    # asyncpg takes str for UUID and INET, and canonical JSON text for JSONB, as they are.
    if kind == "decimal":
        return decimal.Decimal(repr(value))
    return value


# Every way the driver fails. InternalClientError is not an InterfaceError: asyncpg raises it
# ("cannot switch to state ...") when a connection dies mid-protocol, as in a server restart.
DRIVER_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


def translate(exc: BaseException) -> Exception:
    """Driver errors -> our tree: constraint violations are conflicts, bad values a 400, the
    rest an outage (a generic 503 ``storage_unavailable``; the driver's text, with the host and
    port, goes to the log only)."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        return ConflictError(f"duplicate key: {exc.detail or exc}")
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return ConflictError(f"foreign key violated: {exc.detail or exc}", code="foreign_key")
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError | asyncpg.DataError):
        return ValidationError(f"PostgreSQL rejected the value: {exc}")
    return storage_unavailable("PostgreSQL", exc)


async def _keep_session(conn: Any) -> None:
    """Release without asyncpg's default reset (RESET ALL, UNLISTEN, ...): one round trip per
    query saved. Nothing here changes session state: no SET, no LISTEN, only transaction-scoped
    advisory locks, and every transaction is closed by its context manager."""


class PostgresStorage(SQLStorage):
    def __init__(self, url: str, config: PersistenceConfig | None = None) -> None:
        self.url = url
        scheme, rest = url.split("://", 1)
        self.dsn = "postgresql://" + rest if "+" in scheme else url
        self.auto_migrate = True if config is None else config.migrations
        self.min_size = 1 if config is None else config.pool_min_size
        self.max_size = 10 if config is None else config.pool_max_size
        self.builder = SQLBuilder("postgresql", _encode, frozenset({"decimal"}))
        self.pool: Any = None
        self._decoders = {
            name: tuple((c.name, _DECODERS.get(c.kind)) for c in tbl.columns) for name, tbl in TABLES.items()
        }

    async def connect(self) -> None:
        if self.pool is not None:
            return
        try:
            self.pool = await asyncpg.create_pool(
                self.dsn, min_size=self.min_size, max_size=self.max_size, timeout=10, reset=_keep_session
            )
        except DRIVER_ERRORS as exc:
            # Raised at startup, to the operator (not in a response): the detail helps.
            raise StorageError(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}") from exc
        if self.auto_migrate:
            await self.migrate()

    async def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.close()

    def _pool(self) -> Any:
        if self.pool is None:
            raise StorageError("PostgreSQL storage is not connected (await storage.connect())")
        return self.pool

    async def _failed(self, exc: BaseException) -> Exception:
        """Our error for ``exc``; after an outage-type failure every pooled connection is
        replaced on its next use. A server restart leaves each idle connection dead, and without
        this each would fail one more query (one more spill, one more 503) before the pool
        noticed, which kept the writer off a database that was already back."""
        error = translate(exc)
        if isinstance(error, StorageError) and self.pool is not None:
            await self.pool.expire_connections()
        return error

    async def ping(self) -> bool:
        try:
            await self._fetch("SELECT 1", ())
        except StorageError:
            return False
        return True

    async def _execute_all(self, statements: list[tuple[str, Sequence[Any]]]) -> int:
        status = ""
        try:
            async with self._pool().acquire() as conn, conn.transaction():
                for sql, params in statements:
                    status = await conn.execute(sql, *params)
        except DRIVER_ERRORS as exc:
            raise await self._failed(exc) from exc
        # "UPDATE 3" / "DELETE 0": the count is the last word of the command tag.
        return int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0

    async def _execute_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            async with self._pool().acquire() as conn, conn.transaction():
                # In chunks, each one round trip: asyncpg encodes an executemany's rows without
                # yielding (see _in_chunks).
                for start in range(0, len(rows), PREPARE_CHUNK):
                    await conn.executemany(sql, rows[start : start + PREPARE_CHUNK])
        except DRIVER_ERRORS as exc:
            raise await self._failed(exc) from exc

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        try:
            return list(await self._pool().fetch(sql, *params))
        except DRIVER_ERRORS as exc:
            raise await self._failed(exc) from exc

    def _decode(self, tbl: Table, raw: Sequence[Any]) -> Row:
        return {
            name: (value if fn is None or value is None else fn(value))
            for (name, fn), value in zip(self._decoders[tbl.name], raw, strict=True)
        }

    async def copy_rows(self, tbl: Table, names: tuple[str, ...], rows: list[tuple[Any, ...]], skip: bool) -> None:
        """COPY ``rows`` in; with ``skip`` rows whose key exists are ignored (via a temp table)."""
        try:
            async with self._pool().acquire() as conn, conn.transaction():
                if not skip:
                    await conn.copy_records_to_table(tbl.name, records=_in_chunks(rows), columns=list(names))
                    return
                temp = f"tframex_copy_{tbl.name}"
                await conn.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {quote(temp)} (LIKE {quote(tbl.name)}) ON COMMIT DELETE ROWS"
                )
                await conn.copy_records_to_table(temp, records=_in_chunks(rows), columns=list(names))
                cols = ", ".join(quote(n) for n in names)
                keys = ", ".join(quote(k) for k in tbl.primary_key)
                await conn.execute(
                    f"INSERT INTO {quote(tbl.name)} ({cols}) SELECT {cols} FROM {quote(temp)} "
                    f"ON CONFLICT ({keys}) DO NOTHING"
                )
        except DRIVER_ERRORS as exc:
            raise await self._failed(exc) from exc

    async def write_many(self, table: str, rows: Sequence[Any], *, skip_existing: bool = False) -> list[str]:
        if len(rows) < COPY_THRESHOLD:
            return await super().write_many(table, rows, skip_existing=skip_existing)

        tbl = schema_table(table)
        prepared, values = await self._prepared_params(tbl, rows)
        await self.copy_rows(tbl, self.builder.columns(tbl), values, skip_existing)
        return [r["id"] if tbl.has_id else row_key(tbl, r) for r in prepared]

    async def schema_version(self) -> int:
        rows = await self._fetch("SELECT to_regclass($1) IS NOT NULL", (VERSION_TABLE,))
        if not rows[0][0]:
            return 0
        rows = await self._fetch(f"SELECT MAX(version) FROM {VERSION_TABLE}", ())
        return int(rows[0][0] or 0)

    async def migrate(self) -> list[int]:
        applied: list[int] = []
        try:
            async with self._pool().acquire() as conn, conn.transaction():
                # Several workers may start at once: the lock makes the others wait, then see
                # the versions already recorded and do nothing.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
                    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT NOW())"
                )
                done = {r[0] for r in await conn.fetch(f"SELECT version FROM {VERSION_TABLE}")}
                for version in range(1, LATEST + 1):
                    if version in done:
                        continue
                    for statement in migration_statements(version, "postgresql"):
                        await conn.execute(statement)
                    await conn.execute(
                        f"INSERT INTO {VERSION_TABLE} (version, name) VALUES ($1, $2)", version, MIGRATIONS[version]
                    )
                    applied.append(version)
        except DRIVER_ERRORS as exc:
            raise StorageError(f"PostgreSQL migration failed: {exc}") from exc
        return applied


# The seed's name for this backend.
PostgreSQLStorage = PostgresStorage
