"""``sqlite:///path.db`` on aiosqlite: WAL, one writer connection, one reader connection.

SQLite allows a single writer at a time; one connection behind a lock serialises writes in the
process instead of failing with "database is locked", while WAL lets the reader see committed
rows without waiting for the writer.

Batches (``write_many``, the write queue) are inserted with multi-row ``INSERT ... VALUES (...),
(...)`` statements rather than ``executemany``: the sqlite3 module releases and re-takes the GIL
around every statement step, so ``executemany`` hands the GIL between the writer thread and a busy
event loop once per row, and while the loop serves requests each hand-over costs far more than
the row's insert. One statement per chunk of rows takes the GIL once per chunk.
"""

# S608: every identifier in this module's SQL comes from the schema module (never from input);
# values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite

from tframex_asgi.errors import ConflictError, StorageError
from tframex_asgi.storage.base import Row
from tframex_asgi.storage.codec import from_sqlite, to_sqlite
from tframex_asgi.storage.ddl import LATEST, MIGRATIONS, VERSION_TABLE, migration_statements
from tframex_asgi.storage.schema import Table
from tframex_asgi.storage.sqlbase import SQLStorage
from tframex_asgi.storage.sqlbuild import SQLBuilder
from tframex_asgi.storage.unavailable import storage_unavailable

if TYPE_CHECKING:
    from tframex_asgi.config.persistence import PersistenceConfig

__all__ = ["SQLiteStorage", "sqlite_path"]


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    path = url.split(":", 1)[1].removeprefix("//").split("?", 1)[0]
    path = path.removeprefix("/")
    if not path:
        raise StorageError("sqlite URL needs a path: sqlite:///./tframex.db")
    return path


def _translate(exc: sqlite3.Error) -> Exception:
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        code = "foreign_key" if "FOREIGN KEY" in text else "conflict"
        return ConflictError(f"constraint violated: {text}", code=code)
    return storage_unavailable("SQLite", exc)  # generic to the client: the text may name the file


# Bound parameters one statement may carry: SQLite's compile-time default since 3.32 (999 before).
_MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
# Rows per multi-row INSERT: large enough that the GIL is taken rarely, small enough that binding
# one chunk (done holding the GIL) stays well under a millisecond.
_ROWS_PER_STATEMENT = 256


def _multi_row(sql: str, width: int, rows: int) -> str:
    """``INSERT ... VALUES (?, ...)[ tail]`` with ``rows`` value groups instead of one."""
    head, sep, rest = sql.partition(" VALUES (")
    group, close, tail = rest.partition(")")
    if not sep or not close or group.count("?") != width:
        raise ValueError(f"not a single-row INSERT: {sql[:80]!r}")
    return head + " VALUES " + ", ".join(["(" + group + ")"] * rows) + tail


# The writer's page cache, KiB (SQLite's default is 2 MiB; readers keep it).
WRITER_CACHE_KIB = 16384


class SQLiteStorage(SQLStorage):
    def __init__(self, url: str, config: PersistenceConfig | None = None) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self.auto_migrate = True if config is None else config.migrations
        self.builder = SQLBuilder("sqlite", to_sqlite, frozenset({"timestamp", "bool"}))
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._names: dict[str, tuple[str, ...]] = {}
        self._multi_sql: dict[tuple[str, int], str] = {}

    async def _open(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA busy_timeout = 5000")
        return conn

    async def connect(self) -> None:
        if self._writer is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            writer = await self._open()
            await writer.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode and several times faster.
            await writer.execute("PRAGMA synchronous = NORMAL")
            # A multi-row INSERT inside a transaction keeps a statement journal (to undo just that
            # statement), which SQLite spills to a temporary file past 64 KiB: two pwrite calls
            # per audited request under load. In memory it is a memcpy (it lasts one statement).
            await writer.execute("PRAGMA temp_store = MEMORY")
            # A write-queue batch touches more pages than the default 2 MiB cache holds, so pages
            # were read back from the WAL file in the middle of a batch (about one pread per row).
            await writer.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
            self._writer = writer
            self._reader = writer if self.path == ":memory:" else await self._open()
        except sqlite3.Error as exc:
            await self.close()
            raise StorageError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        if self.auto_migrate:
            await self.migrate()

    async def close(self) -> None:
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        for conn in {id(c): c for c in (reader, writer) if c is not None}.values():
            await conn.close()

    def _conns(self) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
        if self._writer is None or self._reader is None:
            raise StorageError("SQLite storage is not connected (await storage.connect())")
        return self._writer, self._reader

    async def ping(self) -> bool:
        try:
            await self._fetch("SELECT 1", ())
        except StorageError:
            return False
        return True

    async def _transaction(self, statements: list[tuple[str, Sequence[Any]]], many: bool = False) -> int:
        """Run ``statements`` in one transaction; the row count of the last one."""
        writer, _ = self._conns()
        changed = 0
        async with self._lock:
            try:
                await writer.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in statements:
                        if many:
                            await writer.executemany(sql, params)
                        else:
                            changed = (await writer.execute(sql, params)).rowcount
                    await writer.execute("COMMIT")
                except BaseException:
                    await writer.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _translate(exc) from exc
        return changed

    async def _execute_all(self, statements: list[tuple[str, Sequence[Any]]]) -> int:
        return await self._transaction(statements)

    async def _execute_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Every row in one transaction, in multi-row statements of a few fixed sizes.

        Each distinct statement text is prepared and kept by the driver's statement cache; a
        statement per batch size would keep up to ``_ROWS_PER_STATEMENT`` of them per table (tens
        of MiB of native memory under varying load), so batches are cut into sizes of
        ``per, 64, 16, 4, 1`` rows: at most five texts per table.
        """
        if len(rows) <= 1:
            await self._transaction([(sql, rows)], many=True)
            return
        width = len(rows[0])
        per = max(1, min(_ROWS_PER_STATEMENT, _MAX_VARIABLES // max(1, width)))
        sizes = [per, *(n for n in (64, 16, 4, 1) if n < per)]
        flat = itertools.chain.from_iterable
        statements: list[tuple[str, Sequence[Any]]] = []
        start = 0
        while start < len(rows):
            left = len(rows) - start
            size = next(n for n in sizes if n <= left)
            chunk = rows[start : start + size]
            start += size
            key = (sql, size)
            text = self._multi_sql.get(key)
            if text is None:
                text = self._multi_sql[key] = _multi_row(sql, width, len(chunk))
            statements.append((text, list(flat(chunk))))
        await self._transaction(statements)

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        _, reader = self._conns()
        try:
            return list(await reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    def _decode(self, tbl: Table, raw: Sequence[Any]) -> Row:
        names = self._names.get(tbl.name)
        if names is None:
            names = self._names[tbl.name] = tuple(c.name for c in tbl.columns)
        return from_sqlite(tbl, raw, names)

    async def schema_version(self) -> int:
        rows = await self._fetch(f"SELECT name FROM sqlite_master WHERE name = '{VERSION_TABLE}'", ())
        if not rows:
            return 0
        rows = await self._fetch(f"SELECT MAX(version) FROM {VERSION_TABLE}", ())
        return int(rows[0][0] or 0)

    async def migrate(self) -> list[int]:
        writer, _ = self._conns()
        applied: list[int] = []
        async with self._lock:
            try:
                # IMMEDIATE takes the write lock first, so two processes never migrate at once.
                await writer.execute("BEGIN IMMEDIATE")
                try:
                    await writer.execute(
                        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
                        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
                    )
                    done = {r[0] for r in await writer.execute_fetchall(f"SELECT version FROM {VERSION_TABLE}")}
                    for version in range(1, LATEST + 1):
                        if version in done:
                            continue
                        for statement in migration_statements(version, "sqlite"):
                            await self._ddl(writer, statement)
                        await writer.execute(
                            f"INSERT INTO {VERSION_TABLE} VALUES (?, ?, strftime('%Y-%m-%d %H:%M:%f000', 'now'))",
                            (version, MIGRATIONS[version]),
                        )
                        applied.append(version)
                    await writer.execute("COMMIT")
                except BaseException:
                    await writer.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite migration failed: {exc}") from exc
        return applied

    @staticmethod
    async def _ddl(conn: aiosqlite.Connection, statement: str) -> None:
        try:
            await conn.execute(statement)
        except sqlite3.OperationalError as exc:
            # SQLite has no ADD COLUMN IF NOT EXISTS: a column already there means a schema
            # created before the version table existed; adopt it.
            if "duplicate column name" not in str(exc):
                raise
