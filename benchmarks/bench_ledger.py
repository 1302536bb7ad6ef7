"""Where a request's server CPU goes under uvicorn: a ledger per component, from py-spy samples.

    .venv/bin/pip install py-spy          # in the bench extra; needs ptrace rights (root, or CAP_SYS_PTRACE)
    .venv/bin/python -m benchmarks.bench_ledger                       # the default configurations
    .venv/bin/python -m benchmarks.bench_ledger --only bare,ours:full-apikey --seconds 10

Each configuration runs in its own single-worker uvicorn (uvloop + httptools when installed) while
wrk drives it; ``py-spy record`` samples every thread of the server at ``--rate`` Hz for the same
seconds. py-spy counts a thread only while it runs (not while it waits), so a component's
CPU time is its samples / rate. Each sample goes to the innermost frame that belongs to a
component (:data:`COMPONENTS`, first match from the leaf up): the standard library and drivers
(json, hmac, asyncio streams, redis-py, asyncpg) count for the code of ours that called them.
Dividing by the requests served gives µs of server CPU per request, comparable across
configurations; the ``bare`` row is what the server and the app alone cost. Other processes of the
machine (PostgreSQL, Redis, wrk) are not sampled: the ledger is the server process alone, and the
req/s column says what the whole machine managed.

Results: ``benchmarks/results/ledger.json``; ``python -m benchmarks.run --report-only`` renders them
in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.configs import BenchContext, by_name
from benchmarks.load import ROOT, _free_port, _start, _stop, _wait_ready, server_stack

__all__ = ["COMPONENTS", "component_of", "ledger", "section"]

DEFAULT = "bare,ours:full-apikey-auditsec,ours:full-apikey,ours:full-redis-pg-lease,ours:full-redis-pg"
# A sample of a thread whose stack holds this function is the SQLite writer thread's, whatever runs.
_SQLITE_THREAD = "_connection_worker_thread"
# (component, pattern on "function (file)"); the first match from the innermost frame outwards wins.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("audit layer (request path)", r"tframex_asgi/audit/layer\.py"),
    ("audit rows: build, redact, sign", r"tframex_asgi/audit/"),
    ("storage: check + encode rows, write queue", r"tframex_asgi/storage/|asyncpg/|aiosqlite/"),
    ("rate limit: Redis client", r"tframex_asgi/ratelimit/(redis_|deadlines|circuit|lease)|redis/|limits/"),
    ("rate limit layer", r"tframex_asgi/ratelimit/"),
    ("authentication", r"tframex_asgi/auth/"),
    ("authorization (RBAC)", r"tframex_asgi/rbac/"),
    ("metrics", r"tframex_asgi/metrics/|prometheus_client/"),
    ("request id, client, route match", r"tframex_asgi/(context|paths|ids|clock)\.py"),
    ("body limit", r"tframex_asgi/bodylimit\.py"),
    ("stack, operational routes", r"tframex_asgi/"),
    ("the app (Starlette)", r"starlette/|benchmarks/apps\.py"),
    ("server (uvicorn)", r"uvicorn/|httptools|benchmarks/serve\.py"),
)
# Only when no frame above matched: the event loop itself (callbacks, selectors, task steps).
_LOOP = ("event loop (asyncio / uvloop)", re.compile(r"asyncio/|uvloop"))
_COMPILED = tuple((name, re.compile(pattern)) for name, pattern in COMPONENTS)
_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


def component_of(frames: list[str]) -> str:
    """The component a sample belongs to; ``frames`` outermost first, as py-spy's raw format.

    The standard library, the drivers and the event loop's own frames count for the nearest
    frame of a component that called them (so ``json`` under the audit writer is the writer's)."""
    if any(_SQLITE_THREAD in frame for frame in frames):
        return "SQLite writer thread"
    wheres = []
    for frame in reversed(frames):
        match = _FRAME.match(frame)
        wheres.append(f"{match.group(1)} ({match.group(2)})" if match else frame)
    for where in wheres:
        for name, pattern in _COMPILED:
            if pattern.search(where):
                return name
    if any(_LOOP[1].search(where) for where in wheres):
        return _LOOP[0]
    return "other (interpreter, unattributed)"


def ledger(raw: str) -> tuple[Counter[str], int]:
    """Samples per component of a py-spy ``--format raw`` file, and the total."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, n = line.rstrip().rpartition(" ")
        if not stack or not n.isdigit():
            continue
        counts[component_of(stack.split(";"))] += int(n)
        total += int(n)
    return counts, total


def _wrk(url: str, headers: list[tuple[str, str]], seconds: float) -> int:
    cmd = ["wrk", "-t1", "-c32", f"-d{seconds:g}s", "--timeout", "5s"]
    for key, value in headers:
        cmd += ["-H", f"{key}: {value}"]
    done = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 30, check=True)
    found = re.search(r"(\d+) requests in", done.stdout)
    if not found or "Non-2xx" in done.stdout:
        raise RuntimeError(f"wrk: {done.stdout.strip()[-300:]}")
    return int(found.group(1))


def measure(names: list[str], seconds: float, rate: int, workdir: Path, ctx: BenchContext) -> dict[str, Any]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    stack = server_stack()
    out: dict[str, Any] = {"seconds": seconds, "rate": rate, "stack": stack, "configs": {}}
    for name in names:
        server = _start(by_name(name), ctx, workdir, stack)
        try:
            _wait_ready(server, time.monotonic() + 120)
            if server.error:
                print(f"skip {name}: {server.error}", flush=True)
                continue
            _wrk(server.url, server.headers, 2)  # warm-up: caches, pools, the first audit batches
            raw = workdir / f"spy-{_free_port()}.txt"
            sampler = subprocess.Popen(
                [spy, "record", "--pid", str(server.proc.pid), "--rate", str(rate), "--format", "raw",
                 "--output", str(raw), "--duration", str(int(seconds)), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            served = _wrk(server.url, server.headers, seconds)
            _, err = sampler.communicate(timeout=seconds + 60)
            if sampler.returncode != 0 or not raw.exists():
                raise RuntimeError(f"py-spy failed ({sampler.returncode}): {err.decode(errors='replace')[-300:]}")
            counts, total = ledger(raw.read_text())
            per_request = {k: v / rate / served * 1e6 for k, v in counts.items()}
            out["configs"][name] = {"rps": served / seconds, "samples": total, "us_per_request": per_request}
            cpu = sum(per_request.values())
            print(f"{name}: {served / seconds:,.0f} req/s, {cpu:.1f} µs of server CPU per request", flush=True)
        finally:
            _stop(server)
    return out


def section(data: dict[str, Any] | None, notes: str | None = None) -> list[str]:
    """The docs/benchmarks.md section of a saved ledger (empty without one)."""
    if not data or not data.get("configs"):
        return []
    configs = data["configs"]
    names = list(configs)
    m = data.get("machine", {})
    stack = data.get("stack", {})
    out = [
        "## Where the server's CPU goes under uvicorn (py-spy ledger)",
        "",
        f"One single-worker uvicorn per configuration ({stack.get('loop')} loop, {stack.get('http')} parser), wrk "
        f"with 32 connections for {data['seconds']:g} s while `py-spy record` samples the server at {data['rate']} Hz; "
        "µs of server CPU per request by component (the innermost frame that belongs to one; the standard "
        "library and the drivers count for their caller). Redis, PostgreSQL and wrk run on the same cores "
        f"and are not in the ledger ({m.get('date')}, commit `{m.get('commit')}`).",
        "",
        "```bash",
        f".venv/bin/python -m benchmarks.bench_ledger --only {','.join(names)}",
        "```",
        "",
        "| component | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    components = sorted(
        {k for c in configs.values() for k in c["us_per_request"]},
        key=lambda k: -max(c["us_per_request"].get(k, 0.0) for c in configs.values()),
    )
    for comp in components:
        cells = [configs[n]["us_per_request"].get(comp, 0.0) for n in names]
        out.append(f"| {comp} | " + " | ".join(f"{v:.1f}" if v >= 0.05 else "-" for v in cells) + " |")
    totals = [sum(configs[n]["us_per_request"].values()) for n in names]
    out.append("| **server CPU per request** | " + " | ".join(f"**{v:.1f}**" for v in totals) + " |")
    walls = [1e6 / configs[n]["rps"] for n in names]
    out.append("| wall per request (1e6 / req/s) | " + " | ".join(f"{v:.1f}" for v in walls) + " |")
    out.append("| req/s | " + " | ".join(f"{configs[n]['rps']:,.0f}" for n in names) + " |")
    if notes:
        out += ["", notes.strip()]
    return [*out, ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=DEFAULT, help="comma-separated configuration names")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "ledger.json")
    args = parser.parse_args()
    from benchmarks import run

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    with run.service_context("tfx-ledger-") as (ctx, workdir):
        data = measure(names, args.seconds, args.rate, workdir, ctx)
    data["machine"] = {k: v for k, v in run.machine_info().items() if k != "packages"}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
