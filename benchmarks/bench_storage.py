"""Storage throughput: batched writes (write_many and the write queue) and point reads.

    .venv/bin/python benchmarks/bench_storage.py [--rows 50000] [--pg postgresql://postgres@127.0.0.1:5432/test]

PostgreSQL runs in a scratch database created and dropped by the benchmark. Rows are
agent_executions-sized (a few short strings, timestamps, a small JSON object).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
import uuid
from typing import Any

from tframex_asgi.config.persistence import WriteQueueConfig
from tframex_asgi.storage import BaseStorage, open_storage
from tframex_asgi.storage.queue import WriteQueue
from tframex_asgi.storage.validate import utcnow


def make_rows(n: int) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {
            "id": str(uuid.uuid4()),
            "agent_name": "assistant",
            "input_message": f"question {i}",
            "output_message": f"answer {i}",
            "execution_time_ms": i % 1000,
            "status": "success",
            "started_at": now,
            "completed_at": now,
            "metadata": {"request_id": f"r{i}", "stream": False},
        }
        for i in range(n)
    ]


async def bench_write_many(store: BaseStorage, rows: list[dict[str, Any]], batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        await store.write_many("agent_executions", rows[i : i + batch], skip_existing=True)
    return len(rows) / (time.perf_counter() - start)


async def bench_queue(store: BaseStorage, rows: list[dict[str, Any]], spill: str) -> float:
    # A queue as deep as the load: this measures the database path, not the overflow (spill) path.
    config = WriteQueueConfig(max_size=len(rows), batch_size=5000, flush_interval=0.05)
    writer = WriteQueue(store, config, spill_path=spill)
    await writer.start()
    start = time.perf_counter()
    for i, row in enumerate(rows):
        writer.submit("agent_executions", row)
        if i % 1000 == 999:
            await asyncio.sleep(0)  # a server yields between requests; so does this producer
    await writer.drain()
    rate = len(rows) / (time.perf_counter() - start)
    assert writer.dropped_total == 0 and writer.rejected_total == 0 and writer.spilled_total == 0
    await writer.stop()
    return rate


async def bench_point_reads(store: BaseStorage, ids: list[str], n: int) -> float:
    sample = random.sample(ids, min(n, len(ids)))
    start = time.perf_counter()
    for row_id in sample:
        rows = await store.read("agent_executions", {"id": row_id})
        assert rows
    return len(sample) / (time.perf_counter() - start)


async def run_backend(name: str, url: str, rows_n: int, reads: int) -> None:
    store = open_storage(url)
    await store.connect()
    try:
        for batch in (500, 5000):
            rows = make_rows(rows_n)
            rate = await bench_write_many(store, rows, batch)
            print(f"{name:10} write_many batch={batch:<5} {rate:>10,.0f} rows/s")
        with tempfile.TemporaryDirectory() as tmp:
            rows = make_rows(rows_n)
            rate = await bench_queue(store, rows, os.path.join(tmp, "spill.jsonl"))
            print(f"{name:10} write queue (submit->DB)   {rate:>10,.0f} rows/s sustained")
        ids = [r["id"] for r in rows]
        rate = await bench_point_reads(store, ids, reads)
        print(f"{name:10} point read by id           {rate:>10,.0f} reads/s")
    finally:
        await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--reads", type=int, default=5_000)
    parser.add_argument(
        "--pg", default=os.environ.get("TFRAMEX_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    await run_backend("memory", "memory://", args.rows, args.reads)
    with tempfile.TemporaryDirectory() as tmp:
        await run_backend("sqlite", f"sqlite:///{tmp}/bench.db", args.rows, args.reads)
    import asyncpg

    name = f"tframex_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await run_backend("postgresql", args.pg.rsplit("/", 1)[0] + f"/{name}", args.rows, args.reads)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
