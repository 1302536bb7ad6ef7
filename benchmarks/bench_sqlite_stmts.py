"""Native memory SQLite's prepared multi-row INSERTs hold as distinct batch sizes accumulate.

``SQLiteStorage.write_many`` turns a batch of k rows into one ``INSERT`` of k value groups, a
different SQL text for each k, each kept prepared in the ``sqlite3`` statement cache. This writes
2,000 batches of ``audit_logs`` rows, of random sizes 1-256 (``random``, what the write queue's
flushes look like under load) or always 256 (``fixed``), and prints ``sqlite3_memory_used()`` and RSS.

    .venv/bin/python -m benchmarks.bench_sqlite_stmts [random|fixed]
"""

from __future__ import annotations

import _sqlite3
import asyncio
import ctypes
import ctypes.util
import datetime as dt
import random
import sys
import tempfile
import uuid
from typing import Any

from tframex_asgi.config.persistence import PersistenceConfig
from tframex_asgi.storage import open_storage


def _memory_used() -> Any:
    for name in (_sqlite3.__file__, ctypes.util.find_library("sqlite3")):
        try:
            used = ctypes.CDLL(name).sqlite3_memory_used
        except (OSError, AttributeError, TypeError):
            continue
        used.restype = ctypes.c_int64
        return used
    raise SystemExit("sqlite3_memory_used not found")


def _rss() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def _row(i: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()), "action": "GET /bench", "resource_type": "http", "resource_id": "/bench",
        "new_values": {"status_code": 200}, "created_at": dt.datetime(2026, 1, 1) + dt.timedelta(seconds=i),
        "chain_id": "c", "seq": i, "prev_hash": "0" * 64, "row_hash": "1" * 64, "status": "success",
        "request_id": f"r{i}",
    }  # fmt: skip


async def main(mode: str) -> None:
    used = _memory_used()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/a.db"
        store = open_storage(url, PersistenceConfig(enabled=True, connection_string=url))
        await store.connect()
        rng = random.Random(1)
        n, sizes = 0, set()
        print(f"start: sqlite {used() / 2**20:.1f} MiB, rss {_rss():.1f} MiB")
        for batch in range(1, 2001):
            k = rng.randint(1, 256) if mode == "random" else 256
            sizes.add(k)
            await store.write_many("audit_logs", [_row(n + j) for j in range(k)])
            n += k
            if batch in (10, 50, 100, 200, 400, 800, 1200, 1600, 2000):
                print(
                    f"{batch:5} batches, {len(sizes):3} distinct sizes, {n:7} rows: "
                    f"sqlite {used() / 2**20:6.1f} MiB, rss {_rss():6.1f} MiB",
                    flush=True,
                )
        await store.close()
        print(f"closed: sqlite {used() / 2**20:.1f} MiB, rss {_rss():.1f} MiB")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "random"))
