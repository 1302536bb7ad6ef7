"""The brute-force guard's cheap paths keep its answers (see ratelimit/bruteforce.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ratelimit.helpers import config
from tests.ratelimit.test_redis import closed_port_url
from tframex_asgi.ratelimit import AuthFailureGuard, open_backend
from tframex_asgi.ratelimit.backend import StorageUnavailable


class Mono:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counting_windows(guard: AuthFailureGuard) -> list[Any]:
    calls: list[Any] = []
    original = guard.backend.window

    async def window(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await original(*args, **kwargs)

    guard.backend.window = window  # type: ignore[method-assign]
    return calls


async def test_memory_guard_reads_nothing_for_an_address_without_failures() -> None:
    guard = AuthFailureGuard(open_backend(config()), "2/minute")
    reads = counting_windows(guard)
    assert await guard.blocked("192.0.2.1") is None
    assert reads == [] and not guard.suspect("192.0.2.1")
    await guard.record_failure("192.0.2.1")
    assert guard.suspect("192.0.2.1") and not guard.suspect("192.0.2.2")
    assert await guard.blocked("192.0.2.1") is None  # one failure of two: not yet
    assert len(reads) == 1
    await guard.record_failure("192.0.2.1")
    assert await guard.blocked("192.0.2.1") is not None
    assert await guard.blocked("192.0.2.2") is None and len(reads) == 2


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window", "sliding-window-counter"])
async def test_marker_outlives_every_window_that_can_still_count(strategy: str) -> None:
    mono = Mono()
    guard = AuthFailureGuard(open_backend(config(strategy=strategy)), "1/minute", monotonic=mono)
    await guard.record_failure("192.0.2.9")
    mono.now += 120.0  # a sliding-window counter still weighs the previous minute
    assert guard.suspect("192.0.2.9")
    mono.now += 1.5
    assert not guard.suspect("192.0.2.9")
    assert guard._marks == {}


async def test_many_addresses_keep_the_markers_bounded() -> None:
    mono = Mono()
    guard = AuthFailureGuard(open_backend(config(strategy="fixed-window")), "5/minute", monotonic=mono)
    for i in range(5000):
        await guard.record_failure(f"10.0.{i // 250}.{i % 250}")
    mono.now += 200.0  # every marker so far has expired
    for i in range(5000):
        await guard.record_failure(f"10.1.{i // 250}.{i % 250}")
    assert len(guard._marks) <= 8192 and guard.suspect("10.1.0.1") and not guard.suspect("10.0.0.1")


async def test_fail_closed_outage_makes_every_address_suspect() -> None:
    backend = open_backend(config(storage=closed_port_url(), timeout=0.2, cooldown=30.0))
    closed = AuthFailureGuard(backend, "2/minute", fail_open=False)
    opened = AuthFailureGuard(backend, "2/minute", fail_open=True)
    try:
        assert not closed.suspect("203.0.113.4")
        await closed.record_failure("203.0.113.9")  # fails: the circuit opens
        assert closed.suspect("203.0.113.4") and not opened.suspect("203.0.113.4")
        with pytest.raises(StorageUnavailable):  # answered 503 ratelimit_unavailable
            await closed.blocked("203.0.113.4")
    finally:
        await backend.close()


async def test_redis_guard_always_reads_the_shared_count(redis_url: str, redis_prefix: str) -> None:
    cfg = config(storage=redis_url, key_prefix=redis_prefix)
    first, second = open_backend(cfg), open_backend(cfg)
    try:
        a, b = AuthFailureGuard(first, "1/minute"), AuthFailureGuard(second, "1/minute")
        await a.record_failure("203.0.113.7")
        assert not b.suspect("203.0.113.7")  # b saw no failure itself...
        assert await b.blocked("203.0.113.7") is not None  # ...but still refuses the address
    finally:
        await first.close()
        await second.close()
