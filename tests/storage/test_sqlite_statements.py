"""SQLite multi-row inserts use a few fixed statement sizes, so the driver's statement cache
(native memory) stays bounded however the write queue's batch sizes vary."""

from __future__ import annotations

import uuid

from tframex_asgi.storage import open_storage
from tframex_asgi.storage.sqlite import SQLiteStorage


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
