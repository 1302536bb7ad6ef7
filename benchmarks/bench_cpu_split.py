"""Where a request's CPU goes under wrk, process by process: the server, wrk, PostgreSQL and Redis.

The ratio to bare is req/s at a fixed concurrency on two shared cores, so it is set by whichever
runs out first: the server's one core (its event loop and, for SQLite, the writer thread), or the
two cores together (server, wrk, PostgreSQL, Redis and the kernel's share of each). This reads
each process's user and system CPU from ``/proc`` before and after a wrk run, plus the machine's
idle time, and prints them as µs per request (about 1 minute):

    .venv/bin/python -m benchmarks.bench_cpu_split
    .venv/bin/python -m benchmarks.bench_cpu_split --only bare,ours:full-redis-pg-gcfreeze --seconds 8

Results: ``benchmarks/results/cpu-split.json``; ``python -m benchmarks.run --report-only`` renders
them in docs/benchmarks.md.

``server %`` is the server process's CPU as a share of one core (100% means its loop is the
limit); ``idle %`` is the share of both cores nobody used. PostgreSQL and Redis are read as every
process of that name on the machine (read only); run this on a machine that serves nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.configs import BenchContext, by_name
from benchmarks.load import Server, _start, _stop, _wait_ready, _wrk, parse_wrk, server_stack

DEFAULT = ",".join((
    "bare", "ours:full-apikey-auditsec", "ours:full-apikey-gcfreeze", "ours:full-redis-pg-gcfreeze",
    "ours:full-redis-pg-lease-gcfreeze",
))  # fmt: skip
_TICK = os.sysconf("SC_CLK_TCK")


def _times(pid: int) -> tuple[float, float]:
    """Seconds of (user, system) CPU of ``pid`` (all its threads) so far; zeros once it is gone."""
    return _times_of(f"/proc/{pid}/stat")


def _times_of(stat: str) -> tuple[float, float]:
    try:
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0.0
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK  # utime, stime


def _cpu(pid: int) -> float:
    return sum(_times(pid))


def _main_thread(pid: int) -> float:
    """CPU seconds so far of ``pid``'s main thread (the event loop's; others run SQLite's writer
    and executors beside it)."""
    return sum(_times_of(f"/proc/{pid}/task/{pid}/stat"))


def _named(names: tuple[str, ...]) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith(names):
                pids.append(int(entry.name))
    return pids


def _machine() -> tuple[float, float]:
    """(busy, idle) seconds of all cores so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / _TICK, idle / _TICK


def _group(pids: list[int]) -> float:
    return sum(_cpu(p) for p in pids)


def split(server: Server, seconds: float, connections: int) -> dict[str, Any]:
    postgres, redis = _named(("postgres",)), _named(("redis-server",))
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    for key, value in server.headers:
        cmd += ["-H", f"{key}: {value}"]
    cmd.append(server.url)
    sys0, loop0 = _times(server.proc.pid)[1], _main_thread(server.proc.pid)
    before = (_cpu(server.proc.pid), _group(postgres), _group(redis), _machine())
    started = time.monotonic()
    wrk = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wrk_cpu = 0.0
    while wrk.poll() is None:  # wrk's own CPU, read while it runs (it is gone once reaped)
        wrk_cpu = _cpu(wrk.pid) or wrk_cpu
        time.sleep(0.05)
    out, err = wrk.communicate()
    wall = time.monotonic() - started
    after = (_cpu(server.proc.pid), _group(postgres), _group(redis), _machine())
    sys1, loop1 = _times(server.proc.pid)[1], _main_thread(server.proc.pid)
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk failed: {err.strip() or out.strip()}")
    sample = parse_wrk(out)
    requests = sample.rps * seconds

    def per(seconds_of_cpu: float) -> float:  # µs per request
        return round(seconds_of_cpu / requests * 1e6, 1)

    busy, idle = after[3][0] - before[3][0], after[3][1] - before[3][1]
    return {
        "name": server.config.name,
        "rps": round(sample.rps),
        "server_us": per(after[0] - before[0]),
        "server_sys_us": per(sys1 - sys0),
        "loop_us": per(loop1 - loop0),
        "loop_core": round((loop1 - loop0) / wall, 3),
        "wrk_us": per(wrk_cpu),
        "postgres_us": per(after[1] - before[1]),
        "redis_us": per(after[2] - before[2]),
        "machine_us": per(busy),
        "server_core": round((after[0] - before[0]) / wall, 3),
        "idle": round(idle / (busy + idle), 3) if busy + idle else 0.0,
    }


# (column heading, row key, format): µs of CPU per request, then shares of a core / both cores.
_COLUMNS = (
    ("req/s", "rps", "{:>7}"),
    ("server", "server_us", "{:>7}"),
    ("(sys)", "server_sys_us", "{:>6}"),
    ("loop", "loop_us", "{:>6}"),
    ("wrk", "wrk_us", "{:>6}"),
    ("pg", "postgres_us", "{:>6}"),
    ("redis", "redis_us", "{:>6}"),
    ("machine", "machine_us", "{:>8}"),
    ("server %", "server_core", "{:>9.0%}"),
    ("loop %", "loop_core", "{:>7.0%}"),
    ("idle %", "idle", "{:>7.0%}"),
)


def _line(name: str, cells: list[str]) -> str:
    return f"{name:36} " + " ".join(cells)


def measure(
    names: list[str], seconds: float, connections: int, workdir: Path, ctx: BenchContext
) -> list[dict[str, Any]]:
    stack = server_stack()
    servers = [_start(by_name(n), ctx, workdir, stack) for n in names]
    rows = []
    try:
        for server in servers:
            _wait_ready(server, time.monotonic() + 120)
        widths = [len(fmt.format(0)) for _, _, fmt in _COLUMNS]
        heads = [f"{head:>{w}}" for (head, _, _), w in zip(_COLUMNS, widths, strict=True)]
        print(_line("configuration", heads) + "   (µs of CPU per request)", flush=True)
        for server in servers:
            if server.error:
                print(f"{server.config.name}: skipped ({server.error})", flush=True)
                continue
            _wrk(server, 2, connections)  # warm
            row = split(server, seconds, connections)
            rows.append(row)
            print(_line(row["name"], [fmt.format(row[key]) for _, key, fmt in _COLUMNS]), flush=True)
    finally:
        for server in servers:
            _stop(server)
    return rows


def section(data: dict[str, Any] | None) -> list[str]:
    """The docs/benchmarks.md section of a saved run (empty without one)."""
    if not data or not data.get("rows"):
        return []
    rows = data["rows"]
    bare = next((r for r in rows if r["name"] == "bare"), None)
    out = [
        "## Which core runs out: CPU per request by process (uvicorn, loopback)",
        "",
        "Command: `python -m benchmarks.bench_cpu_split` (about 1 minute). Each configuration's uvicorn",
        f"worker is driven by wrk with {data['connections']} connections for {data['seconds']} s; every",
        "process's user + system CPU is read from `/proc` before and after, and divided by the requests",
        "served. *loop* is the worker's main thread (the event loop), *server* the whole worker (with",
        "SQLite's writer thread), *machine* every process on both cores; *loop %* is the main thread's",
        "share of one core.",
        "",
        "| configuration | req/s | server µs | (system) | loop µs | wrk µs | PostgreSQL µs | Redis µs "
        "| machine µs | loop % | idle % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['name']} | {r['rps']} | {r['server_us']} | {r['server_sys_us']} | {r['loop_us']} | {r['wrk_us']} "
            f"| {r['postgres_us']} | {r['redis_us']} | {r['machine_us']} | {r['loop_core']:.0%} | {r['idle']:.0%} |"
        )
    out.append("")
    if bare:
        half, most = (round(bare["loop_us"] / share) for share in (0.5, 0.7))
        out += [
            "The event loop's thread is at about one core in every configuration, bare included, while both",
            "cores together still have idle time: req/s is set by the loop thread's CPU per request. Bare's",
            f"loop spends {bare['loop_us']} µs per request (uvicorn, httptools and the kernel's socket work). To",
            f"serve 0.5x of bare's req/s a configuration's loop may spend at most {half} µs per request, and",
            f"at most {most} µs for 0.7x. Issue 18's floors (0.5x for the production setup, 0.7x for the",
            "SQLite full stack) are read against the *loop µs* column; SQLite's writer thread (*server*",
            "minus *loop*) runs beside the loop, and PostgreSQL and Redis on the other core.",
            "",
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=DEFAULT, help=f"configurations, comma-separated (default {DEFAULT})")
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk seconds per configuration")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (benchmarks.run uses 32)")
    parser.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "cpu-split.json")
    args = parser.parse_args()
    from benchmarks import run

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    with run.service_context("tfx-cpu-") as (ctx, workdir):
        rows = measure(names, args.seconds, args.connections, workdir, ctx)
    machine = {k: v for k, v in run.machine_info().items() if k != "packages"}
    data = {"seconds": args.seconds, "connections": args.connections, "rows": rows, "machine": machine}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
