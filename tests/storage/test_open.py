"""Choosing a backend by URL, migrations at connect, and the PostgreSQL schema matching the seed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from tframex_asgi.config.persistence import PersistenceConfig
from tframex_asgi.errors import ConfigError, ConflictError, StorageError
from tframex_asgi.storage import INDEXES, TABLES, open_storage
from tframex_asgi.storage.memory import MemoryStorage
from tframex_asgi.storage.postgres import PostgresStorage
from tframex_asgi.storage.sqlite import SQLiteStorage, sqlite_path


def test_backends_by_scheme() -> None:
    assert isinstance(open_storage("memory://"), MemoryStorage)
    assert isinstance(open_storage("sqlite:///./x.db"), SQLiteStorage)
    assert isinstance(open_storage("postgres://u@h/db"), PostgresStorage)
    assert open_storage("postgresql+asyncpg://u@h/db").dsn == "postgresql://u@h/db"
    with pytest.raises(ConfigError) as err:
        open_storage("mysql://root:hunter2@db/x")
    assert "hunter2" not in str(err.value) and "unsupported storage URL" in str(err.value)


def test_sqlite_paths() -> None:
    assert sqlite_path("sqlite:///./tframex.db") == "./tframex.db"
    assert sqlite_path("sqlite:////var/lib/t.db") == "/var/lib/t.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    with pytest.raises(StorageError):
        sqlite_path("sqlite:///")


def test_schema_is_the_seeds_plus_migration_two() -> None:
    assert len(TABLES) == 15 and len([i for i in INDEXES if i.migration == 1]) == 9
    assert [t for t, d in TABLES.items() if d.migration == 2] == ["api_keys"]


async def test_sqlite_without_migrations_creates_nothing(tmp_path: Path) -> None:
    store = open_storage(f"sqlite:///{tmp_path}/n.db", PersistenceConfig(migrations=False))
    await store.connect()
    try:
        assert await store.schema_version() == 0
        with pytest.raises(StorageError) as info:
            await store.count("users")
        # Clients get a generic message; the driver's text stays on the exception chain (and the log).
        assert info.value.code == "storage_unavailable" and "no such table" in str(info.value.__cause__)
        assert await store.migrate() == [1, 2, 3] and await store.migrate() == []
        assert await store.count("users") == 0 and await store.ping()
    finally:
        await store.close()
    assert not await store.ping()  # closed: not reachable, no exception


async def test_unreachable_postgresql_is_a_storage_error() -> None:
    store = open_storage("postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(StorageError, match="cannot connect"):
        await store.connect()
    assert not await store.ping()


async def test_concurrent_migrations_apply_once(pg_schema_dsn: str) -> None:
    stores = [open_storage(pg_schema_dsn, PersistenceConfig(migrations=False)) for _ in range(4)]
    for s in stores:
        await s.connect()
    try:
        results = await asyncio.gather(*(s.migrate() for s in stores))
        assert sorted(map(tuple, results)) == [(), (), (), (1, 2, 3)]
        assert await stores[0].schema_version() == 3
    finally:
        for s in stores:
            await s.close()


async def test_postgresql_types_are_the_seeds(pg_schema_dsn: str) -> None:
    store = open_storage(pg_schema_dsn)
    await store.connect()
    await store.close()
    conn = await asyncpg.connect(pg_schema_dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name, data_type, is_nullable, character_maximum_length "
            "FROM information_schema.columns WHERE table_schema = current_schema()"
        )
        cols = {(r["table_name"], r["column_name"]): r for r in rows}
        assert cols[("users", "id")]["data_type"] == "uuid"
        assert cols[("users", "username")]["character_maximum_length"] == 255
        assert cols[("users", "username")]["is_nullable"] == "NO"
        assert cols[("metrics", "value")]["data_type"] == "numeric"
        assert cols[("events", "ip_address")]["data_type"] == "inet"
        assert cols[("messages", "tool_calls")]["data_type"] == "jsonb"
        assert cols[("conversations", "created_at")]["data_type"] == "timestamp without time zone"
        assert cols[("audit_logs", "seq")]["data_type"] == "bigint"
        for (table, column), r in cols.items():
            if table in TABLES:
                assert column in TABLES[table].by_name, (table, column)
        assert {t for t, _ in cols} >= set(TABLES)
        checks = await conn.fetchval(
            "SELECT count(*) FROM information_schema.check_constraints WHERE check_clause LIKE '%role%'"
        )
        assert checks >= 1
    finally:
        await conn.close()


async def test_sqlite_serves_concurrent_writers_and_readers(tmp_sqlite_url: str) -> None:
    store = open_storage(tmp_sqlite_url)
    await store.connect()
    try:
        conv = await store.write("conversations", {"agent_name": "a"})

        async def turn(i: int) -> int:
            await store.write("messages", {"conversation_id": conv, "role": "user", "content": str(i)})
            await store.update("conversations", conv, {"title": f"t{i}"})
            return await store.count("messages", {"conversation_id": conv})

        counts = await asyncio.gather(*(turn(i) for i in range(200)))
        assert max(counts) == 200 and await store.count("messages") == 200
    finally:
        await store.close()


async def test_default_style_sqlite_through_services_lifespan(tmp_sqlite_url: str, tmp_path: Path) -> None:
    from tframex_asgi.config import EnterpriseConfig
    from tframex_asgi.services import Services
    from tframex_asgi.storage.queue import get_writer

    config = EnterpriseConfig.from_kwargs(
        enable_persistence=True,
        persistence_config={
            "connection_string": tmp_sqlite_url,
            "migrations": True,
            "queue": {"spill_path": str(tmp_path / "spill.jsonl")},
        },
    )
    services = Services(config)
    writer = get_writer(services)
    await services.startup()  # connects and migrates, then starts the writer
    assert await services.storage.schema_version() == 3
    writer.submit("events", {"event_type": "t", "event_source": "s", "action": "a", "ip_address": "::1"})
    await services.shutdown()  # the writer flushes before the storage closes
    again = open_storage(tmp_sqlite_url)
    await again.connect()
    try:
        assert (await again.read("events"))[0]["ip_address"] == "::1"
    finally:
        await again.close()


async def test_sqlite_batches_span_several_multi_row_statements(tmp_sqlite_url: str) -> None:
    """write_many inserts multi-row statements of _ROWS_PER_STATEMENT rows; a batch over several of
    them keeps order, skips existing ids across chunks, and stays one transaction."""
    from tframex_asgi.storage import sqlite as sqlite_module

    per = sqlite_module._ROWS_PER_STATEMENT
    store = open_storage(tmp_sqlite_url)
    await store.connect()
    try:
        rows = [{"username": f"u{i:04d}", "email": f"u{i}@example.com"} for i in range(2 * per + 7)]
        ids = await store.write_many("users", rows)
        assert await store.count("users") == len(rows)
        stored = {r["id"]: r["username"] for r in await store.read("users")}
        assert [stored[i] for i in ids] == [r["username"] for r in rows]

        # Existing ids in the first and last chunk are skipped, the new rows between them written.
        again = [{"id": ids[0], "username": "dup-first"}]
        again += [{"username": f"new{i:04d}"} for i in range(per + 3)]
        again += [{"id": ids[-1], "username": "dup-last"}]
        await store.write_many("users", again, skip_existing=True)
        assert await store.count("users") == len(rows) + per + 3
        assert (await store.read("users", {"id": ids[0]}))[0]["username"] == "u0000"

        # A conflict in the last chunk rolls back the chunks before it too.
        bad = [{"username": f"late{i:04d}"} for i in range(per + 1)] + [{"username": "u0001"}]
        with pytest.raises(ConflictError):
            await store.write_many("users", bad)
        assert await store.count("users") == len(rows) + per + 3
        assert await store.count("users", {"username": "late0000"}) == 0
    finally:
        await store.close()


def test_multi_row_statement_shape() -> None:
    from tframex_asgi.storage.sqlite import _multi_row

    sql = 'INSERT INTO "t" ("a", "b") VALUES (?, ?) ON CONFLICT ("a") DO NOTHING'
    three = 'INSERT INTO "t" ("a", "b") VALUES (?, ?), (?, ?), (?, ?) ON CONFLICT ("a") DO NOTHING'
    assert _multi_row(sql, 2, 3) == three
    with pytest.raises(ValueError, match="single-row"):
        _multi_row(sql, 3, 2)


@pytest.fixture(params=["memory", "sqlite", "postgresql-copy"])
def big_batch_target(request: pytest.FixtureRequest, tmp_sqlite_url: str) -> tuple[str, str, int]:
    """(storage URL, the method a write_many reaches the store through, rows in the batch).
    Sync on purpose: pg_schema_dsn creates its schema with asyncio.run()."""
    from tframex_asgi.storage.postgres import COPY_THRESHOLD
    from tframex_asgi.storage.validate import PREPARE_CHUNK

    if request.param == "memory":
        return "memory://", "_check_refs", 3 * PREPARE_CHUNK  # called per row once all are prepared
    if request.param == "sqlite":
        return tmp_sqlite_url, "_execute_many", 3 * PREPARE_CHUNK
    return request.getfixturevalue("pg_schema_dsn"), "copy_rows", max(COPY_THRESHOLD, 3 * PREPARE_CHUNK)


async def test_write_many_gives_the_loop_back_between_chunks_of_a_big_batch(
    big_batch_target: tuple[str, str, int],
) -> None:
    """Checking a write-queue batch (thousands of rows) never holds the event loop for all of it,
    on every backend: the ticks another task made before the batch reached the store."""
    from tframex_asgi.storage.validate import PREPARE_CHUNK

    url, hook, count = big_batch_target
    store = open_storage(url)
    await store.connect()
    ticks = 0
    running = True

    async def ticker() -> None:
        nonlocal ticks
        while running:
            ticks += 1
            await asyncio.sleep(0)

    original = getattr(store, hook)
    seen: list[int] = []

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(ticks)  # the other task's progress before the store is touched
        return original(*args, **kwargs)

    setattr(store, hook, spy)
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        start = ticks
        await store.write_many("users", [{"username": f"u{i}"} for i in range(count)])
        assert seen[0] - start >= count // PREPARE_CHUNK - 1  # one turn per chunk after the first
        assert await store.count("users") == count
    finally:
        running = False
        await task
        await store.close()


async def test_postgres_copy_feeds_its_records_with_a_turn_of_the_loop_per_chunk() -> None:
    """asyncpg encodes a list of COPY records without yielding; the storage hands it an async
    iterable that gives the loop back between chunks (the real COPY is covered above)."""
    from tframex_asgi.storage.postgres import _in_chunks
    from tframex_asgi.storage.validate import PREPARE_CHUNK

    rows = [(i,) for i in range(3 * PREPARE_CHUNK + 1)]
    # Another task's progress, one count per turn of the loop, read as each row comes out.
    loop_turns = [0]

    async def ticker() -> None:
        while True:
            loop_turns[0] += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    seen = [(row[0], loop_turns[0]) async for row in _in_chunks(rows)]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [r for r, _ in seen] == list(range(len(rows)))  # every row, in order
    turns = {t for _, t in seen}
    assert len(turns) == 4  # four chunks, the loop turned between each two
    assert all(t == seen[0][1] for _, t in seen[:PREPARE_CHUNK])  # no turn inside a chunk


async def test_postgres_executemany_goes_in_chunks_in_one_transaction(
    pg_schema_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch under COPY's threshold: one executemany per PREPARE_CHUNK rows (each a return to
    the loop), all in one transaction: a failing row leaves none of the batch behind."""
    from tframex_asgi.storage.validate import PREPARE_CHUNK

    sizes: list[int] = []
    original = asyncpg.connection.Connection.executemany

    async def spy(self: asyncpg.Connection, command: str, args: list[tuple[object, ...]], **kw: object) -> None:
        sizes.append(len(args))
        await original(self, command, args, **kw)

    monkeypatch.setattr(asyncpg.connection.Connection, "executemany", spy)
    store = open_storage(pg_schema_dsn)
    await store.connect()
    try:
        count = 2 * PREPARE_CHUNK + 1
        await store.write_many("users", [{"username": f"u{i}"} for i in range(count)])
        assert sizes == [PREPARE_CHUNK, PREPARE_CHUNK, 1]
        assert await store.count("users") == count
        sizes.clear()
        clash = [{"username": f"v{i}"} for i in range(PREPARE_CHUNK)] + [{"username": "u0"}]
        with pytest.raises(ConflictError):
            await store.write_many("users", clash)
        assert sizes == [PREPARE_CHUNK, 1]
        assert await store.count("users") == count  # the first chunk was rolled back with the second
    finally:
        await store.close()
