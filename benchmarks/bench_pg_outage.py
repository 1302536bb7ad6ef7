"""How fast the write queue gets back to PostgreSQL after an outage (needs root: own cluster).

    .venv/bin/python -m benchmarks.bench_pg_outage [--rate 1400] [--down 10]

Starts a throw-away cluster (never the shared one), submits ``--rate`` rows/s to a
:class:`~tframex_asgi.storage.queue.WriteQueue` with the stack's defaults, stops the cluster for
``--down`` seconds and starts it again. Reports, from the moment the server accepts connections
again: when the first row reached it, when the queue left the spill file (every spilled row
replayed, new rows written directly again), and rows lost/duplicated (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from tests.own_services import Cluster, _pg_bin
from tframex_asgi.config.persistence import WriteQueueConfig
from tframex_asgi.storage import open_storage
from tframex_asgi.storage.queue import WriteQueue


async def run(rate: int, down: float) -> dict[str, float | int]:
    bindir = _pg_bin()
    assert bindir is not None, "PostgreSQL binaries not found"
    cluster = Cluster(bindir)
    cluster.init()
    tmp = Path(tempfile.mkdtemp(prefix="tframex-outage-"))
    store = open_storage(cluster.dsn)
    await store.connect()
    writer = WriteQueue(store, WriteQueueConfig(), spill_path=str(tmp / "spill.jsonl"))
    await writer.start()
    ids: list[str] = []
    stop = asyncio.Event()

    async def produce() -> None:
        tick = 0.01
        per_tick = max(1, int(rate * tick))
        while not stop.is_set():
            for _ in range(per_tick):
                row = {"id": str(uuid.uuid4()), "flow_name": "bench"}
                ids.append(row["id"])
                writer.submit("flow_executions", row)
            await asyncio.sleep(tick)

    producer = asyncio.create_task(produce())
    try:
        await asyncio.sleep(2.0)
        await asyncio.to_thread(cluster.stop)
        await asyncio.sleep(down)
        spilled_at_restart = writer.spilled_total
        await asyncio.to_thread(cluster.start)
        back = time.monotonic()
        written_before = writer.written_total
        first_write = switched = None
        while time.monotonic() - back < 120:
            if first_write is None and writer.written_total > written_before:
                first_write = time.monotonic() - back
            if first_write is not None and not writer._spilling:
                switched = time.monotonic() - back
                break
            await asyncio.sleep(0.005)
        stop.set()
        await producer
        await writer.drain()
    finally:
        stop.set()
        await writer.stop()
        await store.close()
    direct = open_storage(cluster.dsn)
    await direct.connect()
    try:
        stored = await direct.count("flow_executions")
    finally:
        await direct.close()
        cluster.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "rate_rows_per_s": rate,
        "down_s": down,
        "rows_spilled_during_outage": spilled_at_restart,
        "first_row_written_after_s": round(first_write or -1, 3),
        "back_to_direct_writes_after_s": round(switched or -1, 3),
        "rows_submitted": len(ids),
        "rows_lost": len(ids) - stored,
        "dropped_total": writer.dropped_total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1400, help="rows per second submitted")
    parser.add_argument("--down", type=float, default=10.0, help="seconds the server is down")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.rate, args.down)), indent=2))


if __name__ == "__main__":
    main()
