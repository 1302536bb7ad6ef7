"""Four worker processes sharing Redis with a limit of 50 admit exactly 50, for every strategy."""

from __future__ import annotations

from tests.ratelimit import mp_worker

STRATEGIES = ["moving-window", "fixed-window", "sliding-window-counter"]
WORKERS = 4
HITS = 60  # per process and strategy: 240 attempts on a limit of 50


def test_four_processes_admit_exactly_the_limit(redis_url: str, redis_prefix: str) -> None:
    results = mp_worker.run_workers(WORKERS, mp_worker.run, redis_url, redis_prefix, STRATEGIES, HITS)
    for strategy in STRATEGIES:
        admitted = [r[strategy][0] for _, r in results]
        failures = [r[strategy][1] for _, r in results]
        assert failures == [0] * WORKERS, strategy
        assert sum(admitted) == 50, (strategy, admitted)
