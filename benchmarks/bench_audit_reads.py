"""GET /audit and `audit tail` read cost at 1k and at 1M rows, on SQLite and PostgreSQL.

    .venv/bin/python -m benchmarks.bench_audit_reads [--sizes 1000,1000000] [--backends sqlite,postgresql]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres] [--repeat 25] [--json out.json]

Each documented query (no filter, each filter, the time window, combinations, a page 50 pages deep
by cursor, `audit tail -n 20`) runs through :func:`tframex_asgi.audit.routes.query_audit`, the
function the route and the CLI use; the figure is the median wall time of ``--repeat`` runs.
Each cell also says how many rows the query returned (at 1k rows a rare filter has fewer than a
page). Before migration 3 the newest-first read scanned and sorted the table (130 ms at 150k rows
on SQLite, issue 12). The table grows from the smallest size to the largest in one
database, so every size is measured on the same file. PostgreSQL runs in a scratch database,
created and dropped here.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from tframex_asgi.audit.routes import query_audit
from tframex_asgi.config.persistence import PersistenceConfig
from tframex_asgi.storage import BaseStorage, open_storage

USERS = [str(uuid.UUID(int=i + 1, version=4)) for i in range(50)]
ACTIONS = ["GET /agents", "POST /agents/{name}/run", "GET /audit", "POST /v1/chat/completions", "user.update"]
OUTCOMES = [("success", None)] * 17 + [
    ("denied", "invalid_token"),
    ("denied", "rate_limited"),
    ("error", "internal_error"),
]
T0 = dt.datetime(2026, 1, 1)
CHUNK = 20_000


def rows(start: int, stop: int) -> list[dict[str, Any]]:
    """Rows ``start``..``stop``: about one a second, every three at the same instant (ties)."""
    raw = os.urandom(16 * (stop - start)).hex()
    out = []
    for n, i in enumerate(range(start, stop)):
        status, reason = OUTCOMES[i % len(OUTCOMES)]
        out.append(
            {
                "id": str(uuid.UUID(raw[32 * n : 32 * n + 32], version=4)),
                "user_id": USERS[i % len(USERS)] if i % 7 else None,
                "action": ACTIONS[i % len(ACTIONS)],
                "resource_type": "http",
                "resource_id": "/agents",
                "new_values": {"status_code": 200, "duration_ms": i % 50},
                "created_at": T0 + dt.timedelta(seconds=i - i % 3),
                "status": status,
                "reason": reason,
                "request_id": f"req-{i}",
                "chain_id": f"chain-{i % 4}",
                "seq": i // 4 + 1,
            }
        )
    return out


def queries(size: int) -> dict[str, Callable[[BaseStorage], Awaitable[Any]]]:
    newest = T0 + dt.timedelta(seconds=size)
    window = {"since": newest - dt.timedelta(seconds=600), "until": newest - dt.timedelta(seconds=300)}

    async def deep(store: BaseStorage) -> Any:
        # Page 51 by cursor: the key of the last row of page 50 (taken once, outside the timing).
        return await query_audit(store, {}, limit=100, after=deep_key[size])

    return {
        "newest 100": lambda s: query_audit(s, {}, limit=100),
        "user_id": lambda s: query_audit(s, {"user_id": USERS[3]}, limit=100),
        "action": lambda s: query_audit(s, {"action": "GET /audit"}, limit=100),
        "status=denied": lambda s: query_audit(s, {"status": "denied"}, limit=100),
        "reason": lambda s: query_audit(s, {"reason": "rate_limited"}, limit=100),
        "request_id": lambda s: query_audit(s, {"request_id": f"req-{size // 2}"}, limit=100),
        "chain_id": lambda s: query_audit(s, {"chain_id": "chain-2"}, limit=100),
        "since+until": lambda s: query_audit(s, {}, limit=100, **window),
        "status+window": lambda s: query_audit(s, {"status": "error"}, limit=100, **window),
        "user_id+action": lambda s: query_audit(s, {"user_id": USERS[5], "action": ACTIONS[0]}, limit=100),
        "cursor page 51": deep,
        "audit tail -n 20": lambda s: query_audit(s, {}, limit=20),
    }


deep_key: dict[int, tuple[dt.datetime, str]] = {}


async def measure(store: BaseStorage, size: int, repeat: int) -> dict[str, list[float]]:
    page = await query_audit(store, {}, limit=5000)
    last = page[min(len(page), 5000) - 1]
    deep_key[size] = (last["created_at"], last["id"])
    out = {}
    for name, run in queries(size).items():
        found = len(await run(store))  # also warms the cache: the figure is the steady state
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            await run(store)
            times.append(time.perf_counter() - start)
        out[name] = [statistics.median(times) * 1000, found]
    return out


async def bench(url: str, sizes: list[int], repeat: int) -> dict[int, dict[str, list[float]]]:
    store = open_storage(url, PersistenceConfig(enabled=True, connection_string=url))
    await store.connect()
    for user in USERS:
        await store.write("users", {"id": user, "username": user[-4:]})
    results: dict[int, dict[str, list[float]]] = {}
    have = 0
    try:
        for size in sorted(sizes):
            started = time.perf_counter()
            while have < size:
                upto = min(size, have + CHUNK)
                await store.write_many("audit_logs", rows(have, upto))
                have = upto
            if url.startswith("postgresql"):
                await store._execute("ANALYZE audit_logs", ())  # type: ignore[attr-defined]
            print(f"  {url.split(':')[0]}: {size} rows in the table (+{time.perf_counter() - started:.0f} s to fill)")
            results[size] = await measure(store, size, repeat)
    finally:
        await store.close()
    return results


async def _pg_admin(dsn: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",")]
    out: dict[str, Any] = {"sizes": sizes, "repeat": args.repeat, "results": {}}
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                out["results"]["sqlite"] = await bench(f"sqlite:///{tmp}/audit.db", sizes, args.repeat)
        else:
            name = f"tframex_bench_audit_{uuid.uuid4().hex[:8]}"
            await _pg_admin(args.pg, f'CREATE DATABASE "{name}"')
            try:
                out["results"]["postgresql"] = await bench(f"{args.pg.rsplit('/', 1)[0]}/{name}", sizes, args.repeat)
            finally:
                await _pg_admin(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return out


def report(out: dict[str, Any]) -> str:
    sizes = out["sizes"]
    head = ["query"] + [f"{b} {s:,} rows: ms (rows)" for b in out["results"] for s in sizes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = next(iter(next(iter(out["results"].values())).values())).keys()
    for name in names:
        cells = [
            f"{out['results'][b][s][name][0]:.2f} ({out['results'][b][s][name][1]:.0f})"
            for b in out["results"]
            for s in sizes
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,1000000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    default_pg = os.environ.get("TFRAMEX_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--pg", default=default_pg)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    out = asyncio.run(main_async(args))
    print(report(out))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
