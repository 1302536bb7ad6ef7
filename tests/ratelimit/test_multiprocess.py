"""Four worker processes sharing Redis with a limit of 50 admit exactly 50, for every strategy."""

from __future__ import annotations

import multiprocessing

from tests.ratelimit import mp_worker

STRATEGIES = ["moving-window", "fixed-window", "sliding-window-counter"]
WORKERS = 4
HITS = 60  # per process and strategy: 240 attempts on a limit of 50


def test_four_processes_admit_exactly_the_limit(redis_url: str, redis_prefix: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=mp_worker.run, args=(i, redis_url, redis_prefix, STRATEGIES, HITS, barrier, out))
        for i in range(WORKERS)
    ]
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
    for strategy in STRATEGIES:
        admitted = [r[strategy][0] for _, r in results]
        failures = [r[strategy][1] for _, r in results]
        assert failures == [0] * WORKERS, strategy
        assert sum(admitted) == 50, (strategy, admitted)
