"""The synchronous memory engines decide exactly as ``limits``' own strategies on its memory storage."""

from __future__ import annotations

import random

import pytest
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import STRATEGIES

from tframex_asgi.ratelimit.memory import ENGINES


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.25

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("strategy", list(ENGINES))
@pytest.mark.parametrize("seed", range(4))
async def test_same_decisions_and_windows_as_limits(strategy: str, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import limits.aio.storage.memory as limits_memory
    import limits.aio.strategies as limits_strategies

    clock = Clock()
    monkeypatch.setattr(limits_memory.time, "time", clock)  # the same ``time`` module object
    assert limits_strategies.time.time is clock
    storage = MemoryStorage()
    reference = STRATEGIES[strategy](storage)  # type: ignore[abstract]
    engine = ENGINES[strategy](clock)
    rng = random.Random(seed)
    items = [parse("5/second"), parse("7/10 seconds"), parse("3/minute")]
    for _ in range(600):
        clock.now += rng.choice([0.0, 0.0, 0.01, 0.2, 0.7, 1.3, 4.0])
        item = rng.choice(items)
        who = rng.choice(["a", "b"])
        cost = rng.choice([1, 1, 1, 2, 9])
        expiry = item.get_expiry()
        expected = await reference.hit(item, who, cost=cost)
        allowed, remaining, reset = engine.hit((item.amount, expiry, who), item.amount, expiry, cost)
        assert allowed == expected
        stats = await reference.get_window_stats(item, who)
        assert remaining == max(0, stats.remaining)
        # A reset in the past reads as "now" in the headers (Backend clamps at 0 seconds).
        assert max(reset, clock.now) == pytest.approx(max(stats.reset_time, clock.now), abs=1e-6)
        assert engine.stats((item.amount, expiry, who), item.amount, expiry) == (remaining, pytest.approx(reset))


@pytest.mark.parametrize("strategy", list(ENGINES))
def test_sweep_drops_only_expired_keys(strategy: str) -> None:
    clock = Clock()
    engine = ENGINES[strategy](clock)
    engine.hit(("old",), 2, 1, 1)
    clock.now += 0.5
    engine.hit(("new",), 2, 60, 1)
    clock.now += 5
    engine.sweep()
    assert len(engine) == 1
    assert engine.stats(("new",), 2, 60)[0] == 1
