"""Brute-force protection (contracts.md): a per-IP budget of failed authentications."""

from __future__ import annotations

import pytest

from tests.ratelimit.helpers import config
from tests.ratelimit.test_redis import closed_port_url
from tframex_asgi.ratelimit import AuthFailureGuard, open_backend
from tframex_asgi.ratelimit.backend import StorageUnavailable


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window", "sliding-window-counter"])
async def test_blocks_an_ip_after_the_configured_failures(strategy: str) -> None:
    guard = AuthFailureGuard(open_backend(config(strategy=strategy)), "3/minute")
    for _ in range(3):
        assert await guard.blocked("198.51.100.7") is None
        await guard.record_failure("198.51.100.7")
    wait = await guard.blocked("198.51.100.7")
    assert wait is not None and 1.0 <= wait <= 60.0
    assert await guard.blocked("198.51.100.8") is None  # other addresses are unaffected
    assert guard.stats.auth_failures_recorded_total == 3 and guard.stats.auth_failures_blocked_total == 1


async def test_unknown_ip_is_never_blocked() -> None:
    guard = AuthFailureGuard(open_backend(config()), "1/minute")
    await guard.record_failure(None)
    assert await guard.blocked(None) is None


async def test_shared_through_redis(redis_url: str, redis_prefix: str) -> None:
    cfg = config(storage=redis_url, key_prefix=redis_prefix)
    first, second = open_backend(cfg), open_backend(cfg)  # two workers
    try:
        a, b = AuthFailureGuard(first, "2/minute"), AuthFailureGuard(second, "2/minute")
        await a.record_failure("203.0.113.1")
        await b.record_failure("203.0.113.1")
        assert await a.blocked("203.0.113.1") is not None
        assert await b.blocked("203.0.113.1") is not None
    finally:
        await first.close()
        await second.close()


async def test_storage_outage_fail_open_blocks_nobody() -> None:
    backend = open_backend(config(storage=closed_port_url(), timeout=0.2))
    guard = AuthFailureGuard(backend, "2/minute", fail_open=True)
    try:
        await guard.record_failure("203.0.113.9")  # never raises
        assert await guard.blocked("203.0.113.9") is None
    finally:
        await backend.close()
    assert backend.stats.unavailable_total >= 1


async def test_storage_outage_fail_closed_raises_unavailable_not_a_wait() -> None:
    # An outage is not a verdict on the caller: the authentication layer turns this into the
    # rate limiter's 503, not a 429 "too many failed authentications".
    backend = open_backend(config(storage=closed_port_url(), timeout=0.2, cooldown=2.5))
    guard = AuthFailureGuard(backend, "2/minute", fail_open=False)
    try:
        await guard.record_failure("203.0.113.9")  # never raises
        with pytest.raises(StorageUnavailable) as info:
            await guard.blocked("203.0.113.9")
    finally:
        await backend.close()
    assert info.value.code == "ratelimit_unavailable" and info.value.retry_after == 2.5
    assert backend.stats.auth_failures_blocked_total == 0
