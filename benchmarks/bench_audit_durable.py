"""What ``security.audit.durability: durable`` costs, against the default (buffered), on SQLite.

    .venv/bin/python -m benchmarks.bench_audit_durable [--requests 3000] [--seconds 5] [--no-uvicorn] [--json out.json]

In-process: the full stack (API key, RBAC, audit level full, SQLite) around the bare Starlette
app, called directly with prebuilt scopes, ``--requests`` requests at concurrency 1 and 32;
req/s, latency percentiles, and how many rows each journal fsync carried (group commit).
Under uvicorn: ``tframex-asgi serve --config`` (the TFrameX endpoint, ``GET /agents`` with the
admin key) loaded by ``benchmarks/loadgen.py`` with 32 keep-alive connections for ``--seconds``.
Only the processes started here are stopped (by pid).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.configs import BenchContext, _full_kwargs, _stack
from benchmarks.inproc import _receive, base_scope
from benchmarks.load import _free_port as free_port

KEY = re.compile(r"^\s+(tfx_\S+)\s*$", re.MULTILINE)


def _percentiles(latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return {"p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}


async def inprocess(workdir: str, durability: str, requests: int, concurrency: int) -> dict[str, Any]:
    ctx = BenchContext(workdir=workdir)
    kwargs = _full_kwargs(ctx, "api_key")
    kwargs["security_config"]["audit"] = {
        "level": "full",
        "durability": durability,
        "journal_path": f"{workdir}/journal-{uuid.uuid4().hex[:6]}",
    }
    built = await _stack(ctx, "api_key", **kwargs)
    latencies: list[float] = []
    per_task = requests // concurrency

    async def client() -> None:
        for _ in range(per_task):
            scope = base_scope(built.headers)
            status: list[int] = []

            async def send(message: dict[str, Any], status: list[int] = status) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])

            start = time.perf_counter()
            await built.app(scope, _receive, send)
            latencies.append(time.perf_counter() - start)
            assert status == [200], status

    try:
        await asyncio.gather(*(client() for _ in range(4)))  # warm-up: memo tables, connections
        latencies.clear()
        journal = built.services.built("journal")
        fsyncs_before = journal.fsyncs_total if journal else 0
        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        fsyncs = (journal.fsyncs_total - fsyncs_before) if journal else 0
    finally:
        assert built.close is not None
        await built.close()
    done = per_task * concurrency
    return {
        "durability": durability,
        "concurrency": concurrency,
        "rps": done / elapsed,
        **_percentiles(latencies),
        "fsyncs": fsyncs,
        "rows_per_fsync": done / fsyncs if fsyncs else None,
    }


def under_uvicorn(workdir: str, durability: str, seconds: float) -> dict[str, Any]:
    root = Path(workdir) / f"serve-{durability}"
    root.mkdir()
    config = root / "tframex.yaml"
    config.write_text(
        f"""
enterprise:
  persistence: {{enabled: true, connection_string: "sqlite:///{root}/audit.db"}}
  security:
    audit: {{level: full, durability: {durability}, journal_path: "{root}/journal"}}
"""
    )
    port = free_port()
    log = root / "serve.log"
    cmd = [sys.executable, "-m", "tframex_asgi", "serve", "--config", str(config), "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen([*cmd, "--log-level", "warning"], cwd=root, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while not KEY.search(log.read_text()) or "serving on" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("serve did not start:\n" + log.read_text())
            time.sleep(0.2)
        time.sleep(1.0)
        key = KEY.findall(log.read_text())[0]
        gen = [sys.executable, "-m", "benchmarks.loadgen", "--port", str(port), "--path", "/agents"]
        gen += ["--seconds", str(seconds), "--connections", "32", "--header", f"X-API-Key: {key}"]
        result = json.loads(subprocess.run(gen, check=True, capture_output=True, text=True).stdout)
    finally:
        proc.terminate()
        proc.wait(30)
    return {"durability": durability, "concurrency": 32, **result}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"inprocess": [], "uvicorn": []}
    with tempfile.TemporaryDirectory() as workdir:
        for concurrency in (1, 32):
            for durability in ("buffered", "durable"):
                out["inprocess"].append(await inprocess(workdir, durability, args.requests, concurrency))
        if not args.no_uvicorn:
            for durability in ("buffered", "durable"):
                out["uvicorn"].append(under_uvicorn(workdir, durability, args.seconds))
    return out


def report(out: dict[str, Any]) -> str:
    lines = ["| where | durability | concurrency | req/s | p50 ms | p99 ms | rows per fsync |", "|" + "---|" * 7]
    for where in ("inprocess", "uvicorn"):
        for r in out[where]:
            per = r.get("rows_per_fsync")
            lines.append(
                f"| {where} | {r['durability']} | {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {'-' if per is None else f'{per:.1f}'} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-uvicorn", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    out = asyncio.run(main_async(args))
    print(report(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
