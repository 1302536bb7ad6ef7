"""The layering floor: what N do-nothing pure ASGI layers cost per request, in-process.

    .venv/bin/python -m benchmarks.bench_floor [--layers 1,4,8] [--rounds 15] [-n 3000]

Each layer does what ours do at the least: a type test, a ``send`` wrapper closure, and one await
per message through it. Around the bare Starlette app, rounds interleaved, medians; the difference
to the bare app is what stacking costs before any layer does its own work.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from benchmarks.apps import bare_starlette
from benchmarks.inproc import _discard, _receive, base_scope


class PassThrough:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def wrapped(message: dict[str, Any]) -> None:
            await send(message)

        await self.app(scope, receive, wrapped)


async def _timed(app: Any, n: int) -> float:
    scopes = [base_scope([]) for _ in range(n)]
    start = time.perf_counter_ns()
    for scope in scopes:
        await app(scope, _receive, _discard)
    return (time.perf_counter_ns() - start) / n / 1000


async def main(layers: list[int], rounds: int, n: int) -> None:
    bare = bare_starlette()
    apps: dict[int, Any] = {0: bare}
    for count in layers:
        app: Any = bare
        for _ in range(count):
            app = PassThrough(app)
        apps[count] = app
    times: dict[int, list[float]] = {k: [] for k in apps}
    for _ in range(rounds):
        for count, app in apps.items():
            times[count].append(await _timed(app, n))
    base = statistics.median(times[0])
    for count in apps:
        median = statistics.median(times[count])
        print(f"{count} pass-through layers: {median:.2f} µs per request ({median - base:+.2f} over bare)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", default="1,4,8")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("-n", type=int, default=3000)
    args = parser.parse_args()
    asyncio.run(main([int(x) for x in args.layers.split(",")], args.rounds, args.n))
