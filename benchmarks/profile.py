"""Profile one configuration in-process: where its microseconds go.

    .venv/bin/python -m benchmarks.profile ours:full-apikey [--requests 5000] [--top 30]

Runs the requests under cProfile (after a warm-up) and prints the functions with the most own
time, plus the µs/request measured without the profiler against the bare app, interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import pstats
import statistics
import tempfile

from benchmarks.configs import BenchContext, by_name
from benchmarks.inproc import _scopes, _timed, check_app, drain


def _chain(app: object) -> list[object]:
    """The middlewares from the outermost inward, following ``.app`` (stops at the Starlette app)."""
    out = []
    seen: set[int] = set()
    while app is not None and id(app) not in seen:
        seen.add(id(app))
        out.append(app)
        if type(app).__module__.startswith("starlette."):
            break
        app = getattr(app, "app", None)
    return out


def layer_shares(app: object, stats: pstats.Stats, requests: int) -> list[dict[str, object]]:
    """Own time of each layer = its ``__call__``'s cumulative time minus the next layer's, in profiled
    µs per request (the profiler inflates every call, so compare shares rather than absolutes). The
    last row is what ran outside the request path during the run (audit writer, timers)."""
    cumulative: dict[tuple[str, int, str], float] = {}
    driver = 0.0
    for (filename, line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        cumulative[(filename, line, name)] = row[3]
        if name == "_timed" and filename.endswith("inproc.py"):
            driver = max(driver, row[3])
    layers: list[tuple[str, float]] = []
    for obj in _chain(app):
        code = getattr(type(obj).__call__, "__code__", None)
        if code is None:
            continue
        key = (code.co_filename, code.co_firstlineno, code.co_name)
        if key in cumulative:
            layers.append((type(obj).__module__ + "." + type(obj).__name__, cumulative[key]))
    if not layers:
        return []
    total = max(driver, layers[0][1])
    out: list[dict[str, object]] = []
    for i, (name, cum) in enumerate(layers):
        own = cum - (layers[i + 1][1] if i + 1 < len(layers) else 0.0)
        out.append({"layer": name, "own_us": own / requests * 1e6, "share": own / total})
    background = total - layers[0][1]
    out.append({"layer": "(outside the request path: background tasks)", "own_us": background / requests * 1e6,
                "share": background / total})  # fmt: skip
    return out


async def profile_layers(name: str, ctx: BenchContext, requests: int) -> list[dict[str, object]]:
    """Build ``name``, warm it up, and return :func:`layer_shares` for ``requests`` profiled requests."""
    built = await by_name(name).build(ctx)
    try:
        await check_app(built)
        await _timed(built.app, _scopes(built, min(requests, 300)))
        scopes = _scopes(built, requests)
        profiler = cProfile.Profile()
        profiler.enable()
        await _timed(built.app, scopes)
        profiler.disable()
        return layer_shares(built.app, pstats.Stats(profiler), requests)
    finally:
        if built.close is not None:
            await built.close()


def _print_layers(app: object, stats: pstats.Stats, requests: int) -> None:
    rows = layer_shares(app, stats, requests)
    if rows:
        print("own time per layer (under the profiler, so inflated; compare shares):")
    for row in rows:
        print(f"  {row['layer']:60} {row['own_us']:8.1f} µs  {row['share']:6.1%}")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="tfx-prof-") as tmp:
        logging.basicConfig(filename=f"{tmp}/bench.log", level=logging.WARNING)
        ctx = BenchContext(workdir=tmp, redis_url=args.redis_url, pg_dsn=args.pg_dsn)
        built = await by_name(args.config).build(ctx)
        bare = await by_name("bare").build(ctx)
        try:
            await check_app(built)
            await _timed(built.app, _scopes(built, 500))
            diffs = []
            await drain(built)
            for _ in range(args.rounds):
                b = await _timed(bare.app, _scopes(bare, args.requests // 5))
                c = await _timed(built.app, _scopes(built, args.requests // 5))
                # Each block's audit rows written before the next: without it the write queue
                # fills up over the rounds and spills, and the profile shows the spill file.
                await drain(built)
                diffs.append((c[0] - b[0], c[1] - b[1]))
            wall = statistics.median(d[0] for d in diffs)
            cpu = statistics.median(d[1] for d in diffs)
            print(f"{args.config}: overhead {wall:+.1f} µs/request wall, {cpu:+.1f} µs CPU (median of {args.rounds})")
            scopes = _scopes(built, args.requests)
            profiler = cProfile.Profile()
            profiler.enable()
            await _timed(built.app, scopes)
            await drain(built)  # the rows' build, sign and write are part of what a request costs
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            _print_layers(built.app, stats, len(scopes))
            stats.strip_dirs().sort_stats(args.sort)
            stats.print_stats(args.top)
            print(out.getvalue())
        finally:
            if built.close is not None:
                await built.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--pg-dsn", default=None)
    asyncio.run(main(parser.parse_args()))
