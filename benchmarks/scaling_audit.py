"""``bench_scaling audit``: the audit row's cost with ``audit_logs`` holding 1k vs 1M rows.

The rows are seeded by one ``INSERT ... SELECT`` over a generated series (SQLite: a recursive CTE;
PostgreSQL: ``generate_series``), shaped like the logger's: random UUID ids, timestamps older than
any live row, a chain of their own, every indexed column filled. Each size is its own stack (API
key + RBAC + audit level ``full``, rate limits and metrics off) and its own database.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import tempfile
import time
import uuid
from typing import Any

from benchmarks.configs import BenchContext, Built, _security, _stack
from benchmarks.inproc import _block, _scopes

_COLUMNS = (
    "id, user_id, action, resource_type, resource_id, new_values, ip_address, created_at, chain_id, seq, "
    "prev_hash, row_hash, status, reason, request_id"
)
_SQLITE_SEED = f"""
INSERT INTO audit_logs ({_COLUMNS})
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?)
SELECT
    lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-a'
          || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))),
    NULL, CASE i % 5 WHEN 0 THEN 'POST /v1/chat/completions' ELSE 'GET /bench' END, 'http', '/bench',
    '{{"status_code": 200, "duration_ms": 1.5}}', '127.0.0.1',
    datetime('2026-01-01', '+' || i || ' seconds') || '.000000', 'seed-chain', i,
    lower(hex(randomblob(32))), lower(hex(randomblob(32))),
    CASE WHEN i % 20 = 0 THEN 'denied' ELSE 'success' END,
    CASE WHEN i % 20 = 0 THEN 'rate_limited' END, 'seed-' || i
FROM c
"""
_PG_SEED = f"""
INSERT INTO audit_logs ({_COLUMNS})
SELECT gen_random_uuid(), NULL, CASE i % 5 WHEN 0 THEN 'POST /v1/chat/completions' ELSE 'GET /bench' END,
    'http', '/bench', '{{"status_code": 200, "duration_ms": 1.5}}'::jsonb, '127.0.0.1'::inet,
    timestamp '2026-01-01' + i * interval '1 second', 'seed-chain', i, md5(i::text) || md5((-i)::text),
    md5((i + 1)::text) || md5((-i - 1)::text), CASE WHEN i % 20 = 0 THEN 'denied' ELSE 'success' END,
    CASE WHEN i % 20 = 0 THEN 'rate_limited' END, 'seed-' || i
FROM generate_series(1, $1) AS i
"""


def _seed_sqlite(path: str, rows: int) -> None:
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        with conn:
            conn.execute(_SQLITE_SEED, (rows,))
        conn.execute("ANALYZE audit_logs")
    finally:
        conn.close()


async def _seed_pg(dsn: str, rows: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_PG_SEED, rows)
        await conn.execute("ANALYZE audit_logs")
    finally:
        await conn.close()


async def _admin(sql: str) -> None:
    import asyncpg

    from benchmarks.run import PG_ADMIN_DSN

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _build(backend: str, rows: int, workdir: str, run_id: str) -> Built:
    if backend == "sqlite":
        path = f"{workdir}/audit-{rows}.db"
        url = f"sqlite:///{path}"
    else:
        from benchmarks.run import PG_ADMIN_DSN

        name = f"tframex_bench_{run_id}_{rows}"
        await _admin(f'CREATE DATABASE "{name}"')
        url = f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    built = await _stack(
        BenchContext(workdir=workdir, run_id=run_id),
        "api_key",
        enable_security=True,
        security_config=_security("api_key", audit="full"),
        enable_persistence=True,
        persistence_config={"connection_string": url},
        enable_metrics=False,
    )
    started = time.perf_counter()
    if backend == "sqlite":
        await asyncio.to_thread(_seed_sqlite, path, rows)
    else:
        await _seed_pg(url, rows)
    print(f"audit-{backend} {rows:>9,}: {rows:,} rows seeded in {time.perf_counter() - started:.1f} s", flush=True)
    return built


async def bench_audit(backend: str, sizes: list[int], n: int, rounds: int) -> tuple[dict[int, float], dict[str, Any]]:
    """Per size: median µs/request of block + drain wall time (the figure), and of the request path."""
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="tfx-audit-rows-") as tmp:
        built = {size: await _build(backend, size, tmp, run_id) for size in sizes}
        wall: dict[int, list[float]] = {size: [] for size in sizes}
        path: dict[int, list[float]] = {size: [] for size in sizes}
        try:
            for b in built.values():  # warm-up: caches, prepared statements, the chain head
                await _block(b, _scopes(b, 200))
            for _ in range(rounds):
                for size, b in built.items():
                    scopes = _scopes(b, n)
                    start = time.perf_counter()
                    request_path, _, _ = await _block(b, scopes)
                    wall[size].append((time.perf_counter() - start) / n * 1e6)
                    path[size].append(request_path)
        finally:
            for b in built.values():
                if b.close is not None:
                    await b.close()
            if backend != "sqlite":
                for size in sizes:
                    await _admin(f'DROP DATABASE IF EXISTS "tframex_bench_{run_id}_{size}" WITH (FORCE)')
    medians = {size: statistics.median(v) for size, v in wall.items()}
    extra = {
        "request_path_us": {str(size): round(statistics.median(v), 1) for size, v in path.items()},
        "what": "block + drain wall µs/request",
    }
    return medians, extra
