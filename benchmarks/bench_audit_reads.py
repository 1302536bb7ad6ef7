"""GET /audit and `audit tail` read cost at 1k and at 1M rows, on SQLite and PostgreSQL.

    .venv/bin/python -m benchmarks.bench_audit_reads [--sizes 1000,1000000] [--backends sqlite,postgresql]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres] [--repeat 25] [--json out.json]

Each documented query (no filter, each filter, the time window, combinations, page 10
by cursor, `audit tail -n 20`) runs through :func:`tframex_asgi.audit.routes.query_audit`, the
function the route and the CLI use; the figure is the median wall time of ``--repeat`` runs, the
sizes (one database each) timed in turn within every round.
Each cell also says how many rows the query returned (at 1k rows a rare filter has fewer than a
page). Before migration 3 the newest-first read scanned and sorted the table (130 ms at 150k rows
on SQLite, issue 12). PostgreSQL runs in scratch databases, created and dropped here.
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

USERS = [str(uuid.UUID(int=i + 1, version=4)) for i in range(8)]
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
                "user_id": USERS[i % len(USERS)] if i % 9 else None,
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
    since, until = newest - dt.timedelta(seconds=600), newest - dt.timedelta(seconds=300)

    async def deep(store: BaseStorage) -> Any:
        # Page 10 by cursor: the key of the last row of page 9 (taken once, outside the timing).
        return await query_audit(store, {}, limit=100, after=deep_key[size])

    return {
        "newest 100": lambda s: query_audit(s, {}, limit=100),
        "user_id": lambda s: query_audit(s, {"user_id": USERS[3]}, limit=100),
        "action": lambda s: query_audit(s, {"action": "GET /audit"}, limit=100),
        "status=denied": lambda s: query_audit(s, {"status": "denied"}, limit=100),
        "reason": lambda s: query_audit(s, {"reason": "rate_limited"}, limit=100),
        "request_id": lambda s: query_audit(s, {"request_id": f"req-{size // 2}"}, limit=100),
        "chain_id": lambda s: query_audit(s, {"chain_id": "chain-2"}, limit=100),
        "since+until": lambda s: query_audit(s, {}, limit=100, since=since, until=until),
        "status+window": lambda s: query_audit(s, {"status": "error"}, limit=100, since=since, until=until),
        "user_id+action": lambda s: query_audit(s, {"user_id": USERS[5], "action": ACTIONS[0]}, limit=100),
        "cursor page 10": deep,
        "audit tail -n 20": lambda s: query_audit(s, {}, limit=20),
    }


deep_key: dict[int, tuple[dt.datetime, str]] = {}


async def fill(url: str, size: int) -> BaseStorage:
    store = open_storage(url, PersistenceConfig(enabled=True, connection_string=url))
    await store.connect()
    started = time.perf_counter()
    for user in USERS:
        await store.write("users", {"id": user, "username": user[-4:]})
    for at in range(0, size, CHUNK):
        await store.write_many("audit_logs", rows(at, min(size, at + CHUNK)))
    if url.startswith("postgresql"):
        await store._execute("ANALYZE audit_logs", ())  # type: ignore[attr-defined]
    print(f"  {url.split(':')[0]}: {size:,} rows written in {time.perf_counter() - started:.0f} s", flush=True)
    page = await query_audit(store, {}, limit=900)
    last = page[-1]
    deep_key[size] = (last["created_at"], last["id"])
    return store


async def bench(urls: dict[int, str], repeat: int) -> dict[int, dict[str, list[float]]]:
    """One database per size; each query is timed on every size in turn, round after round, so the
    load of a shared machine weighs on every size alike."""
    stores = {size: await fill(url, size) for size, url in urls.items()}
    results: dict[int, dict[str, list[float]]] = {size: {} for size in urls}
    try:
        plans = {size: queries(size) for size in urls}
        for name in plans[next(iter(urls))]:
            found = {size: len(await plans[size][name](store)) for size, store in stores.items()}  # warm-up
            times: dict[int, list[float]] = {size: [] for size in urls}
            for _ in range(repeat):
                for size, store in stores.items():
                    start = time.perf_counter()
                    await plans[size][name](store)
                    times[size].append(time.perf_counter() - start)
            for size in urls:
                results[size][name] = [statistics.median(times[size]) * 1000, found[size]]
    finally:
        for store in stores.values():
            await store.close()
    return results


async def _pg_admin(dsn: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    sizes = sorted(int(s) for s in args.sizes.split(","))
    out: dict[str, Any] = {"sizes": sizes, "repeat": args.repeat, "results": {}}
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                urls = {size: f"sqlite:///{tmp}/audit-{size}.db" for size in sizes}
                out["results"]["sqlite"] = await bench(urls, args.repeat)
        else:
            names = {size: f"tframex_bench_audit_{size}_{uuid.uuid4().hex[:8]}" for size in sizes}
            base = args.pg.rsplit("/", 1)[0]
            try:
                for name in names.values():
                    await _pg_admin(args.pg, f'CREATE DATABASE "{name}"')
                out["results"]["postgresql"] = await bench({s: f"{base}/{n}" for s, n in names.items()}, args.repeat)
            finally:
                for name in names.values():
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
