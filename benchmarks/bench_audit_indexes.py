"""What each set of ``audit_logs`` indexes costs an insert, and random against time-ordered keys.

    .venv/bin/python -m benchmarks.bench_audit_indexes [--prefill 0] [--rows 20000] [--backends sqlite,postgresql]

Rows shaped like the logger's go through ``storage.write_many`` in batches of 5,000 (the write
queue's batch) into a fresh database, after ``--prefill`` rows, with every index, without migration
3's keyset indexes, and with no secondary index at all; ids either random (version 4, random request
ids) or time-ordered (version 7, time-led request ids). SQLite: the CPU time of its writer thread per
row (process minus event-loop thread). PostgreSQL: wall time per row (the server's work included;
PostgreSQL at ``TFRAMEX_BENCH_PG_DSN``, a database created and dropped per case).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sqlite3
import tempfile
import time
import uuid
from typing import Any

from tframex_asgi.ids import new_hex_id, new_time_hex_id, new_time_uuid, new_uuid
from tframex_asgi.storage import open_storage
from tframex_asgi.storage.schema import INDEXES

BATCH = 5000
AUDIT = [ix for ix in INDEXES if ix.table == "audit_logs"]
SETS = {
    "every index": [],
    "without migration 3's": [ix.name for ix in AUDIT if ix.migration == 3],
    "no secondary index": [ix.name for ix in AUDIT],
}


def rows(n: int, start: int, ordered: bool) -> list[dict[str, Any]]:
    base = dt.datetime(2026, 12, 7)
    actor = {"id": "u", "username": "bench", "auth_method": "api_key", "api_key_id": "k", "external": False}
    return [
        {
            "id": new_time_uuid() if ordered else new_uuid(),
            "user_id": None, "action": "GET /bench", "resource_type": "http", "resource_id": "/bench",
            "old_values": None, "status": "success", "reason": None, "ip_address": "127.0.0.1",
            "new_values": {"method": "GET", "route": "/bench", "path": "/bench", "query": "", "status_code": 200,
                           "duration_ms": 0, "actor": actor},
            "created_at": base + dt.timedelta(microseconds=37 * i), "user_agent": "wrk",
            "request_id": new_time_hex_id() if ordered else new_hex_id(),
            "chain_id": "bench", "seq": i + 1, "prev_hash": "a" * 64, "row_hash": "b" * 64,
        }
        for i in range(start, start + n)
    ]  # fmt: skip


async def _write(storage: Any, batch: list[dict[str, Any]]) -> None:
    for i in range(0, len(batch), BATCH):
        await storage.write_many("audit_logs", batch[i : i + BATCH], skip_existing=True)


async def case(url: str, drop: list[str], ordered: bool, prefill: int, n: int) -> float:
    storage = open_storage(url)
    await storage.connect()
    try:
        await storage.migrate()
        if url.startswith("sqlite"):
            conn = sqlite3.connect(url.removeprefix("sqlite:///"))
            for name in drop:
                conn.execute(f"DROP INDEX {name}")
            conn.commit()
            conn.close()
        else:
            import asyncpg

            pg = await asyncpg.connect(url)
            for name in drop:
                await pg.execute(f"DROP INDEX {name}")
            await pg.close()
        await _write(storage, rows(prefill + 2000, 0, ordered))  # the prefill, and a warm-up
        batch = rows(n, prefill + 2000, ordered)
        wall, cpu, loop = time.perf_counter(), time.process_time(), time.thread_time()
        await _write(storage, batch)
        if url.startswith("sqlite"):  # the writer thread's CPU: process time minus this thread's
            return ((time.process_time() - cpu) - (time.thread_time() - loop)) / n * 1e6
        return (time.perf_counter() - wall) / n * 1e6
    finally:
        await storage.close()


async def _pg_case(admin: str, drop: list[str], ordered: bool, prefill: int, n: int) -> float:
    import asyncpg

    name = f"tframex_bench_idx_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        return await case(f"{admin.rsplit('/', 1)[0]}/{name}", drop, ordered, prefill, n)
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def main(backends: list[str], prefill: int, n: int) -> None:
    from benchmarks.run import PG_ADMIN_DSN

    for backend in backends:
        what = "SQLite writer thread CPU" if backend == "sqlite" else "PostgreSQL wall"
        print(f"{backend}: µs per row ({what}), {n:,} rows after {prefill:,}", flush=True)
        for label, drop in SETS.items():
            figures = []
            for ordered in (False, True):
                if backend == "sqlite":
                    with tempfile.TemporaryDirectory(prefix="tfx-idx-") as tmp:
                        figures.append(await case(f"sqlite:///{tmp}/a.db", drop, ordered, prefill, n))
                else:
                    figures.append(await _pg_case(PG_ADMIN_DSN, drop, ordered, prefill, n))
            print(f"  {label:24} random ids {figures[0]:6.1f}   time-ordered ids {figures[1]:6.1f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefill", type=int, default=0)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    asyncio.run(main([b.strip() for b in args.backends.split(",")], args.prefill, args.rows))
