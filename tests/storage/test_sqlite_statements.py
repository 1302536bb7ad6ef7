"""SQLite multi-row inserts use a few fixed statement sizes, so the driver's statement cache
(native memory) stays bounded however the write queue's batch sizes vary."""

from __future__ import annotations

import uuid

from tframex_asgi.storage import open_storage
from tframex_asgi.storage.sqlite import WRITER_CACHE_KIB, SQLiteStorage


async def test_batches_of_every_size_share_five_statement_texts(tmp_sqlite_url: str) -> None:
    storage = open_storage(tmp_sqlite_url)
    assert isinstance(storage, SQLiteStorage)
    await storage.connect()
    try:
        written = 0
        for size in range(1, 130):
            rows = [
                {
                    "id": str(uuid.uuid4()),
                    "event_type": "bench",
                    "event_source": "test",
                    "action": "write",
                    "details": {"n": i},
                }
                for i in range(size)
            ]
            await storage.write_many("events", rows)
            written += size
        assert await storage.count("events") == written
        texts = {sql for sql, _ in storage._multi_sql}
        assert len(texts) == 1  # one table, one INSERT
        assert len(storage._multi_sql) <= 5, sorted(n for _, n in storage._multi_sql)
    finally:
        await storage.close()


async def test_the_writer_keeps_statement_journals_and_batches_in_memory(tmp_sqlite_url: str) -> None:
    """A batch's multi-row INSERT keeps a statement journal; past 64 KiB SQLite would spill it
    to a temporary file (two pwrite calls per audited request under load) unless temp_store is
    MEMORY on the writer."""
    storage = open_storage(tmp_sqlite_url)
    assert isinstance(storage, SQLiteStorage)
    await storage.connect()
    try:
        writer, _ = storage._conns()
        async with writer.execute("PRAGMA temp_store") as cursor:
            assert await cursor.fetchone() == (2,)  # 2: MEMORY
        # A batch's pages stay in the writer's cache instead of being read back from the WAL.
        async with writer.execute("PRAGMA cache_size") as cursor:
            assert await cursor.fetchone() == (-WRITER_CACHE_KIB,)
    finally:
        await storage.close()
