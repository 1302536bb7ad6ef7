"""Worker for the multi-process test: hits one limit concurrently against the shared Redis."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from typing import Any

from limits import parse


def run_workers(workers: int, target: Callable[..., None], *args: Any) -> list[Any]:
    """Start ``workers`` spawned processes of ``target(index, *args, barrier, out)`` (they start
    hitting together at the barrier) and return what each put on ``out``; each must exit with 0."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(i, *args, barrier, out)) for i in range(workers)]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=90) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)
    return results


def run(index: int, redis_url: str, prefix: str, strategies: list[str], hits: int, barrier: Any, out: Any) -> None:
    from tests.ratelimit.helpers import config
    from tframex_asgi.ratelimit import open_backend

    results: dict[str, tuple[int, int]] = {}
    for strategy in strategies:
        # Generous timeout: the count must not depend on how busy the machine is.
        cfg = config(storage=redis_url, strategy=strategy, key_prefix=prefix, timeout=20.0, max_connections=16)

        async def burst() -> tuple[int, int]:
            backend = open_backend(cfg)
            item = parse("50/hour")
            try:
                # Half the workers hit through limits, half through hit_window (one Lua script for
                # the fixed and moving window): both paths share the keys and the count.
                if index % 2:
                    found = await asyncio.gather(
                        *(backend.hit_window(item, ("mp", strategy), state=True) for _ in range(hits))
                    )
                    answers = [allowed for allowed, _ in found]
                else:
                    answers = await asyncio.gather(*(backend.hit(item, "mp", strategy) for _ in range(hits)))
            finally:
                await backend.close()
            return sum(answers), backend.stats.unavailable_total

        barrier.wait(timeout=60)  # every process starts each burst together
        results[strategy] = asyncio.run(burst())
    out.put((index, results))


def run_lease(index: int, redis_url: str, prefix: str, lease: int, hits: int, barrier: Any, out: Any) -> None:
    """As :func:`run` in lease mode, admitting as the middleware does: from the lease without
    awaiting when it can, else through Redis."""
    from tests.ratelimit.helpers import config
    from tframex_asgi.ratelimit import open_backend

    cfg = config(
        storage=redis_url, strategy="fixed-window", lease=lease, key_prefix=prefix, timeout=20.0, max_connections=16
    )

    async def burst() -> tuple[int, int]:
        backend = open_backend(cfg)
        item = parse("50/hour")

        async def one() -> bool:
            answer = backend.hit_window_sync(item, ("mp-lease",))  # type: ignore[attr-defined]
            if answer is None:
                answer = await backend.hit_window(item, ("mp-lease",))
            return bool(answer[0])

        try:
            answers = await asyncio.gather(*(one() for _ in range(hits)))
        finally:
            await backend.close()
        return sum(answers), backend.stats.unavailable_total

    barrier.wait(timeout=60)
    out.put((index, asyncio.run(burst())))
