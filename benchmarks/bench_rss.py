"""Server memory over requests under uvicorn: does RSS grow with the number of requests served?

Each variant is a benchmark configuration (``benchmarks.configs``) in its own single-worker uvicorn,
optionally with environment variables (``MALLOC_ARENA_MAX=2``, ``PYTHONMALLOC=malloc``) or another
server stack (``asyncio``/``h11``). All servers start first; each round drives every unfinished
server with wrk for ``--chunk`` seconds (32 connections), then reads its memory figures from
``GET /__bench/stats`` (``benchmarks.memstats``: VmRSS, RssAnon/RssFile, Python objects and blocks,
glibc ``mallinfo2``). At the end each server is asked once more with ``malloc_trim(0)`` first.

    .venv/bin/python -m benchmarks.bench_rss                       # the default variants, 300k requests each
    .venv/bin/python -m benchmarks.bench_rss --requests 1000000 --variants full-sqlite,full-redis-pg
    .venv/bin/python -m benchmarks.bench_rss --variants full-sqlite-tracemalloc --requests 100000

Writes ``benchmarks/results/rss.json`` (``--json``) and ``docs/img/bench-rss.png`` (``--plot``);
``python -m benchmarks.run --report-only`` puts them on docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from benchmarks.configs import BenchContext, by_name
from benchmarks.load import ROOT, Server, _start, _stop, _wait_ready, server_stack

# name: (configuration, extra environment, stack override or None for the fastest installed)
VARIANTS: dict[str, tuple[str, dict[str, str], dict[str, str] | None]] = {
    "bare": ("bare", {}, None),
    "full-sqlite": ("ours:full-apikey", {}, None),
    "full-sqlite-auditsec": ("ours:full-apikey-auditsec", {}, None),
    "full-sqlite-auditoff": ("ours:full-apikey-auditoff", {}, None),
    "full-sqlite-nometrics": ("ours:full-apikey-nometrics", {}, None),
    "full-sqlite-arena2": ("ours:full-apikey", {"MALLOC_ARENA_MAX": "2"}, None),
    "full-sqlite-pymalloc-off": ("ours:full-apikey", {"PYTHONMALLOC": "malloc"}, None),
    "full-sqlite-h11": ("ours:full-apikey", {}, {"loop": "asyncio", "http": "h11"}),
    "full-sqlite-tracemalloc": ("ours:full-apikey", {"TFX_BENCH_TRACEMALLOC": "8"}, None),
    "full-redis-pg": ("ours:full-redis-pg", {}, None),
    "full-redis-pg-auditsec": ("ours:full-redis-pg-auditsec", {}, None),
}
DEFAULT = "bare,full-sqlite,full-sqlite-auditsec,full-sqlite-auditoff,full-redis-pg,full-sqlite-arena2"


def _stats(server: Server, query: str = "") -> dict[str, Any]:
    url = f"http://127.0.0.1:{server.port}/__bench/stats" + (f"?{query}" if query else "")
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def _drive(server: Server, seconds: int, connections: int) -> int:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    for key, value in server.headers:
        cmd += ["-H", f"{key}: {value}"]
    done = subprocess.run([*cmd, server.url], capture_output=True, text=True, timeout=seconds + 30, check=True)
    match = re.search(r"(\d+) requests in", done.stdout)
    if not match or "Non-2xx" in done.stdout:
        raise RuntimeError(f"wrk: {done.stdout.strip()[-300:]}")
    return int(match.group(1))


async def _pg(action: str, ctx: BenchContext) -> None:
    from benchmarks import run

    await (run._pg_create(ctx) if action == "create" else run._pg_drop(ctx))


def measure(names: list[str], requests: int, chunk: int, connections: int, partial: Path) -> dict[str, Any]:
    from benchmarks import run

    default_stack = server_stack()
    out: dict[str, Any] = {"requests": requests, "chunk_s": chunk, "connections": connections, "variants": {}}
    out["machine"] = {k: v for k, v in run.machine_info().items() if k != "packages"}
    with tempfile.TemporaryDirectory(prefix="tfx-rss-") as tmp:
        ctx = BenchContext(workdir=tmp, run_id=uuid.uuid4().hex[:8])
        ctx.redis_url = run.REDIS_URL if run._redis_ok() else None
        asyncio.run(_pg("create", ctx))
        servers: dict[str, Server] = {}
        try:
            for name in names:
                config, env, stack = VARIANTS[name]
                stack = stack or default_stack
                env = {**env, "TFX_BENCH_STATS": "1"}
                servers[name] = _start(by_name(config), ctx, Path(tmp), stack, extra_env=env, slug=name)
                out["variants"][name] = {"config": config, "env": VARIANTS[name][1], "stack": stack, "samples": []}
            deadline = time.monotonic() + 120
            for name, server in list(servers.items()):
                _wait_ready(server, deadline)
                if server.error:
                    print(f"skip {name}: {server.error}", flush=True)
                    out["variants"][name]["error"] = server.error
                    _stop(server)
                    del servers[name]
            for name, server in servers.items():
                first = _stats(server)
                first["requests"] = 0
                out["variants"][name]["samples"].append(first)
                if "TFX_BENCH_TRACEMALLOC" in VARIANTS[name][1]:
                    _drive(server, 2, connections)
                    _stats(server, "snapshot=mark")
            served = dict.fromkeys(servers, 0)
            while any(served[n] < requests for n in servers):
                for name, server in servers.items():
                    if served[name] >= requests:
                        continue
                    served[name] += _drive(server, chunk, connections)
                    sample = _stats(server)
                    sample["requests"] = served[name]
                    out["variants"][name]["samples"].append(sample)
                line = ", ".join(
                    f"{n} {served[n] / 1000:.0f}k {out['variants'][n]['samples'][-1]['rss_kib'] / 1024:.1f} MiB"
                    for n in servers
                )
                print(line, flush=True)
                partial.write_text(json.dumps(out) + "\n")  # what a stopped run has measured so far
            for name, server in servers.items():
                if "TFX_BENCH_TRACEMALLOC" in VARIANTS[name][1]:
                    out["variants"][name]["tracemalloc_top"] = _stats(server, "snapshot=diff")["snapshot"]
                out["variants"][name]["trimmed"] = _stats(server, "trim=1")
        finally:
            for server in servers.values():
                _stop(server)
            asyncio.run(_pg("drop", ctx))
    return out


def summary(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per variant: RSS at start, after the first 10% of the requests, at the end, and after malloc_trim."""
    rows = []
    for name, var in data["variants"].items():
        samples = var.get("samples") or []
        if len(samples) < 3:
            continue
        total = samples[-1]["requests"]
        early = next(s for s in samples if s["requests"] >= total * 0.1)
        half = next(s for s in samples if s["requests"] >= total * 0.5)
        mib = 1024.0
        rows.append({
            "variant": name,
            "config": var["config"],
            "env": " ".join(f"{k}={v}" for k, v in var["env"].items()) or "-",
            "requests": total,
            "rss_start": samples[0]["rss_kib"] / mib,
            "rss_10pct": early["rss_kib"] / mib,
            "rss_half": half["rss_kib"] / mib,
            "rss_end": samples[-1]["rss_kib"] / mib,
            "second_half_per_100k": (samples[-1]["rss_kib"] - half["rss_kib"]) / mib
            / max(1, total - half["requests"]) * 1e5,
            "py_objects": (samples[1]["py_objects"], samples[-1]["py_objects"]),
            "heap_in_use": samples[-1].get("heap_in_use", 0) / 2**20,
            "heap_free": samples[-1].get("heap_free", 0) / 2**20,
            "rss_trimmed": var["trimmed"]["rss_kib"] / mib,
        })  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=DEFAULT, help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--requests", type=int, default=300_000, help="per variant")
    parser.add_argument("--chunk", type=int, default=5, help="seconds of wrk between samples")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "rss.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "bench-rss.png")
    args = parser.parse_args()
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s): {', '.join(unknown)}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    data = measure(names, args.requests, args.chunk, args.connections, args.json.with_suffix(".partial.json"))
    data["summary"] = summary(data)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=1) + "\n")
    from benchmarks.plots import plot_rss

    plot_rss(data, args.plot)
    for row in data["summary"]:
        print(
            f"{row['variant']:26} start {row['rss_start']:5.1f}  10% {row['rss_10pct']:5.1f}  half "
            f"{row['rss_half']:5.1f}  end {row['rss_end']:5.1f} MiB ({row['second_half_per_100k']:+.2f} MiB/100k "
            f"in the 2nd half), trimmed {row['rss_trimmed']:5.1f}, heap in use {row['heap_in_use']:.1f} "
            f"free {row['heap_free']:.1f} MiB, objects {row['py_objects'][0]}->{row['py_objects'][1]}"
        )
    for name, var in data["variants"].items():
        if var.get("tracemalloc_top"):
            print(f"--- {name}: tracemalloc growth since the mark\n" + "\n".join(var["tracemalloc_top"][:40]))
    print(f"wrote {args.json} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
