"""One command: run the overhead suite and regenerate docs/benchmarks.md and its plots.

    .venv/bin/python -m benchmarks.run            # full run: publishes docs/benchmarks.md + docs/img/bench-*.png
    .venv/bin/python -m benchmarks.run --quick --out /tmp/benchsmoke   # smoke run, nothing in the repo
    .venv/bin/python -m benchmarks.run --report-only   # re-render from benchmarks/results/latest.json

Where it writes: the results JSON goes to ``OUT/{quick,latest}.json`` (``--out``, default
benchmarks/results). A full run publishes the report (docs/benchmarks.md and docs/img/bench-*.png);
a ``--quick`` run writes its report to ``OUT/report/`` instead, unless ``--publish`` is given
(``--no-publish`` keeps a full run out of docs/ too).

Options: ``--only NAME[,NAME]`` (baselines are always added), ``--no-load``, ``--no-inprocess``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.configs import CONFIGS, BenchConfig, BenchContext

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PG_ADMIN_DSN = os.environ.get("TFRAMEX_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TFRAMEX_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

PROFILED = "ours:full-apikey"
PACKAGES = (
    "tframex-asgi", "starlette", "fastapi", "uvicorn", "uvloop", "httptools", "prometheus-client", "limits",
    "joserfc", "redis", "asyncpg", "aiosqlite", "slowapi", "starlette-exporter", "prometheus-fastapi-instrumentator",
    "opentelemetry-instrumentation-asgi", "opentelemetry-sdk",
)  # fmt: skip

PROFILES: dict[str, dict[str, Any]] = {
    # In-process: rounds, requests per configuration per round (at most: a slow configuration gets
    # fewer, so that its block lasts about block_ms). Load: rounds, seconds per run, connections.
    "quick": {"rounds": 5, "requests": 300, "block_ms": 20, "load_rounds": 2, "load_seconds": 1.0, "connections": 32},
    "full": {"rounds": 15, "requests": 2000, "block_ms": 120, "load_rounds": 5, "load_seconds": 4.0, "connections": 32},
}


def log(message: str) -> None:
    print(message, flush=True)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "commit": commit.stdout.strip() or None,
        "wrk": shutil.which("wrk") is not None,
        "packages": {name: _version(name) for name in PACKAGES},
    }


async def _pg_create(ctx: BenchContext) -> None:
    try:
        import asyncpg
    except ImportError:
        return
    name = f"tframex_bench_{ctx.run_id}"
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        log(f"  PostgreSQL not reachable at {PG_ADMIN_DSN}: {exc!r}")
        return
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    ctx.pg_dsn = f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"


async def _pg_drop(ctx: BenchContext) -> None:
    if not ctx.pg_dsn:
        return
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "tframex_bench_{ctx.run_id}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.contextmanager
def service_context(prefix: str) -> Iterator[tuple[BenchContext, Path]]:
    """A run's working directory and context: Redis when it answers, a fresh PostgreSQL database
    when it does (dropped afterwards), for the benchmarks that start their own servers."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        ctx = BenchContext(workdir=tmp, run_id=uuid.uuid4().hex[:8])
        ctx.redis_url = REDIS_URL if _redis_ok() else None
        asyncio.run(_pg_create(ctx))
        try:
            yield ctx, Path(tmp)
        finally:
            asyncio.run(_pg_drop(ctx))


def _redis_ok() -> bool:
    try:
        import redis
    except ImportError:
        return False
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
        ok = bool(client.ping())
        client.close()
        return ok
    except Exception as exc:
        log(f"  Redis not reachable at {REDIS_URL}: {exc!r}")
        return False


def _summarise_log(path: Path) -> dict[str, int]:
    """How many warnings each logger wrote during the in-process run (first words of the message)."""
    counts: dict[str, int] = {}
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            key = " ".join(line.split()[:6])[:90]
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:10])


def _select(only: str | None) -> list[BenchConfig]:
    if not only:
        return list(CONFIGS)
    wanted = {n.strip() for n in only.split(",") if n.strip()}
    unknown = wanted - {c.name for c in CONFIGS}
    if unknown:
        raise SystemExit(f"unknown configuration(s): {', '.join(sorted(unknown))}")
    bases = {c.base for c in CONFIGS if c.name in wanted}
    return [c for c in CONFIGS if c.name in wanted or c.name in bases]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few rounds, noisy numbers")
    parser.add_argument("--only", help="comma-separated configuration names (baselines are added)")
    parser.add_argument("--no-load", action="store_true", help="skip the uvicorn runs")
    parser.add_argument("--no-inprocess", action="store_true", help="skip the in-process runs")
    parser.add_argument("--report-only", action="store_true", help="re-render docs from the saved results")
    parser.add_argument("--rounds", type=int, help="override in-process rounds")
    parser.add_argument("--requests", type=int, help="override requests per in-process round")
    parser.add_argument("--load-rounds", type=int, help="override load rounds")
    parser.add_argument("--load-seconds", type=float, help="override seconds per load run")
    parser.add_argument("--connections", type=int, help="override load connections")
    parser.add_argument("--list", action="store_true", help="list the configurations and exit")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="directory for the results JSON and the unpublished report (default: benchmarks/results)",
    )
    parser.add_argument(
        "--publish",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write docs/benchmarks.md and docs/img/bench-*.png (default: yes for a full run, no for --quick)",
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out.resolve()

    if args.list:
        for c in CONFIGS:
            log(f"{c.name:26} {c.title}")
        return 0
    if args.report_only:
        saved = out_dir / "latest.json"
        saved_data = json.loads((saved if saved.exists() else out_dir / "quick.json").read_text())
        publish = args.publish if args.publish is not None else saved_data.get("profile") != "quick"
        _write_report(saved_data, out_dir, publish=publish)
        return 0

    started = time.monotonic()
    profile = dict(PROFILES["quick" if args.quick else "full"])
    for key in ("rounds", "requests", "load_rounds", "load_seconds", "connections"):
        if getattr(args, key) is not None:
            profile[key] = getattr(args, key)
    configs = _select(args.only)
    data: dict[str, Any] = {
        "profile": "quick" if args.quick else "full",
        "settings": profile,
        "machine": machine_info(),
        "configs": [{"name": c.name, "group": c.group, "base": c.base, "title": c.title} for c in configs],
        "inprocess": {},
        "load": {},
        "skipped": {},
        "skipped_load": {},
    }
    log(f"machine: {data['machine']['cpu']}, {data['machine']['cores']} cores, Python {data['machine']['python']}, "
        f"load average {data['machine']['load_average']}")  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="tfx-bench-") as tmp:
        ctx = BenchContext(workdir=tmp, run_id=uuid.uuid4().hex[:8])
        # Warnings still cost what they cost, but go to a file instead of flooding the terminal.
        log_file = Path(tmp) / "bench.log"
        logging.basicConfig(filename=log_file, level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
        if _redis_ok():
            ctx.redis_url = REDIS_URL
        asyncio.run(_pg_create(ctx))
        try:
            if not args.no_inprocess:
                log(
                    f"in-process: {len(configs)} configurations, "
                    f"{profile['rounds']} rounds x {profile['requests']} requests"
                )
                from benchmarks.inproc import run_inprocess

                results, skipped = asyncio.run(
                    run_inprocess(
                        configs,
                        ctx,
                        rounds=profile["rounds"],
                        requests=profile["requests"],
                        block_ms=profile["block_ms"],
                        log=log,
                    )
                )
                data["inprocess"] = {name: r.to_dict() for name, r in results.items()}
                data["skipped"] = skipped
                if PROFILED in results:
                    from benchmarks.profile import profile_layers

                    log(f"profiling {PROFILED} (where its time goes)")
                    data["layer_profile"] = {
                        "config": PROFILED,
                        "rows": asyncio.run(profile_layers(PROFILED, ctx, 1000 if args.quick else 3000)),
                    }
            if not args.no_load:
                from benchmarks.load import run_load

                load_configs = [c for c in configs if c.load and c.name not in data["skipped"]]
                log(f"under load: {len(load_configs)} servers, {profile['load_rounds']} rounds x "
                    f"{profile['load_seconds']} s, {profile['connections']} connections")  # fmt: skip
                lresults, lskipped, info = run_load(
                    load_configs,
                    ctx,
                    rounds=profile["load_rounds"],
                    seconds=profile["load_seconds"],
                    connections=profile["connections"],
                    workdir=Path(tmp),
                    log=log,
                )
                data["load"] = {name: r.to_dict() for name, r in lresults.items()}
                data["skipped_load"] = lskipped
                data["machine"]["server"] = info
        finally:
            asyncio.run(_pg_drop(ctx))
            logging.shutdown()
            data["log_warnings"] = _summarise_log(log_file)
    data["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]

    out_dir.mkdir(parents=True, exist_ok=True)
    results_file = out_dir / ("quick.json" if args.quick else "latest.json")
    results_file.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    log(f"wrote {_shown(results_file)}")
    _write_report(data, out_dir, publish=args.publish if args.publish is not None else not args.quick)
    log(f"took {time.monotonic() - started:.0f} s")
    return 0


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _write_report(data: dict[str, Any], out_dir: Path, *, publish: bool) -> None:
    """Publish into docs/, or write the report to OUT/report/ (kept out of git when inside the repo)."""
    from benchmarks.report import write_report

    if publish:
        target = ROOT / "docs"
    else:
        target = out_dir / "report"
        target.mkdir(parents=True, exist_ok=True)
        if target.is_relative_to(ROOT):
            (target / ".gitignore").write_text("# generated by benchmarks.run, never committed\n*\n")
    write_report(data, target)
    from benchmarks.report_more import sections

    page = target / "benchmarks.md"
    page.write_text(page.read_text(encoding="utf-8") + "\n".join(sections(target)) + "\n", encoding="utf-8")
    log(f"wrote {_shown(page)} and {_shown(target / 'img')}/bench-*.png")


if __name__ == "__main__":
    sys.exit(main())
