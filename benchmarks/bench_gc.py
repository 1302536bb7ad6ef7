"""What Python's garbage collector costs each configuration under load, and what gc_freeze saves.

Each configuration runs in its own uvicorn (the fastest loop and parser installed) with
``TFX_BENCH_STATS=1``, whose ``GET /__bench/stats`` reports the collector's passes per generation
and the ms they took with the event loop stopped (a ``gc.callbacks`` timer in
``benchmarks.memstats``). The servers are warmed, then driven by wrk one after another, and the
passes and ms during that load are printed next to req/s and p99:

    .venv/bin/python -m benchmarks.bench_gc                      # redis-pg and SQLite, with and without gc_freeze
    .venv/bin/python -m benchmarks.bench_gc --only bare,ours:full-redis-pg --seconds 10

The ``*-gcfreeze`` configurations set ``server.gc_freeze: true`` (docs/deployment.md).
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.configs import BenchContext, by_name
from benchmarks.load import Server, _start, _stop, _wait_ready, _wrk, server_stack

DEFAULT = "ours:full-redis-pg,ours:full-redis-pg-gcfreeze,ours:full-apikey,ours:full-apikey-gcfreeze"


def _gc(server: Server) -> tuple[list[int], list[float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/__bench/stats", timeout=30) as resp:
        data = json.loads(resp.read())
    return data["gc_passes"], data["gc_ms"]


def measure(
    names: list[str], seconds: float, connections: int, workdir: Path, ctx: BenchContext
) -> list[dict[str, Any]]:
    stack = server_stack()
    servers = [_start(by_name(n), ctx, workdir, stack, extra_env={"TFX_BENCH_STATS": "1"}) for n in names]
    rows: list[dict[str, Any]] = []
    try:
        for server in servers:
            _wait_ready(server, time.monotonic() + 120)
        for server in servers:
            if server.error:
                print(f"{server.config.name}: skipped ({server.error})", flush=True)
                continue
            _wrk(server, 2, connections)  # warm: pools, caches and the objects startup left
            passes0, ms0 = _gc(server)
            sample = _wrk(server, seconds, connections)
            passes1, ms1 = _gc(server)
            passes = [b - a for a, b in zip(passes0, passes1, strict=True)]
            ms = [round(b - a, 1) for a, b in zip(ms0, ms1, strict=True)]
            row = {
                "name": server.config.name, "rps": round(sample.rps), "p99_ms": sample.p99_ms,
                "gc_passes": passes, "gc_ms": ms, "gc_share": round(sum(ms) / (seconds * 1000), 4),
            }  # fmt: skip
            rows.append(row)
            print(
                f"{row['name']:36} {row['rps']:>7} req/s  p99 {row['p99_ms']:6.2f} ms  "
                f"passes gen0/1/2 {passes[0]}/{passes[1]}/{passes[2]}  "
                f"ms {ms[0]}/{ms[1]}/{ms[2]}  ({row['gc_share']:.1%} of the wall time)",
                flush=True,
            )
    finally:
        for server in servers:
            _stop(server)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=DEFAULT, help=f"configurations, comma-separated (default {DEFAULT})")
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk seconds per configuration")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    from benchmarks import run

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    with run.service_context("tfx-gc-") as (ctx, workdir):
        measure(names, args.seconds, args.connections, workdir, ctx)


if __name__ == "__main__":
    main()
