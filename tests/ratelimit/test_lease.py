"""Lease mode (``lease: N``) on the real Redis: never over the limit, at most P * (N - 1) under
it, a fresh lease per window, and the exact mode's failure policy when Redis is down."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from limits import parse

from tests.ratelimit import mp_worker
from tests.ratelimit.helpers import config, ok_app
from tframex_asgi.errors import ConfigError
from tframex_asgi.ratelimit import RateLimitMiddleware, open_backend
from tframex_asgi.ratelimit.lease import LeaseBackend
from tframex_asgi.ratelimit.protocol import StorageUnavailable, SyncBackend

WORKERS = 4


def lease_backend(redis_url: str, prefix: str, lease: int, **kwargs: object) -> LeaseBackend:
    kwargs.setdefault("strategy", "fixed-window")
    backend = open_backend(config(storage=redis_url, key_prefix=prefix, lease=lease, **kwargs))
    assert isinstance(backend, LeaseBackend)
    return backend


async def admit(backend: LeaseBackend, item: object, key: tuple[str, ...]) -> bool:
    answer = backend.hit_window_sync(item, key)  # type: ignore[arg-type]
    if answer is None:
        answer = await backend.hit_window(item, key)  # type: ignore[arg-type]
    return answer[0]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"lease": -1}, "0 (off) or more"),
        ({"lease": True}, "integer"),
        ({"lease": 5, "storage": "memory://", "strategy": "fixed-window"}, "redis://"),
        ({"lease": 5, "storage": "redis://127.0.0.1:6379/0", "strategy": "moving-window"}, "fixed-window only"),
        ({"lease": 5, "storage": "redis://127.0.0.1:6379/0", "strategy": "sliding-window-counter"}, "fixed-window"),
    ],
)
def test_config_refuses_what_lease_mode_cannot_do(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(**kwargs)
    assert info.value.path == "enterprise.security.rate_limiting.lease"
    assert needle in str(info.value)


def test_config_accepts_a_lease_on_redis_fixed_window() -> None:
    assert config(lease=10, storage="redis://127.0.0.1:6379/0", strategy="fixed-window").lease == 10
    assert config().lease == 0


async def test_one_process_admits_exactly_the_limit(redis_url: str, redis_prefix: str) -> None:
    backend = lease_backend(redis_url, redis_prefix, 7)
    item = parse("50/hour")
    try:
        assert isinstance(backend, SyncBackend)
        answers = await asyncio.gather(*(admit(backend, item, ("one",)) for _ in range(80)))
        assert sum(answers) == 50
        # Refused from the lease's memory now: the window is known to be full.
        answer = backend.hit_window_sync(item, ("one",))
        assert answer is not None and answer[0] is False and answer[1] is not None and answer[1].remaining == 0
        assert (await backend.window(item, "one")).remaining == 0
        # Taking leases costs one script per lease, not one per request.
        assert backend.inner.windows.batcher.calls <= 50 // 7 + 2
    finally:
        await backend.close()


async def test_headers_report_the_process_view(redis_url: str, redis_prefix: str) -> None:
    backend = lease_backend(redis_url, redis_prefix, 5)
    item = parse("20/hour")
    try:
        allowed, state = await backend.hit_window(item, ("h",))
        assert allowed and state is not None
        # 4 units left in the lease + 15 left in the shared window after taking 5.
        assert state.remaining == 19 and state.limit == 20 and 0 < state.reset <= 3600
        answer = backend.hit_window_sync(item, ("h",))
        assert answer is not None and answer[1] is not None and answer[1].remaining == 18
    finally:
        await backend.close()


async def test_window_reset_gives_a_fresh_lease(redis_url: str, redis_prefix: str) -> None:
    backend = lease_backend(redis_url, redis_prefix, 2)
    item = parse("3/second")
    try:
        answers = [await admit(backend, item, ("r",)) for _ in range(5)]
        assert answers == [True, True, True, False, False]
        answer = backend.hit_window_sync(item, ("r",))
        assert answer is not None and answer[1] is not None
        await asyncio.sleep(answer[1].reset + 0.05)
        assert backend.hit_window_sync(item, ("r",)) is None  # the old lease ended with its window
        answers = [await admit(backend, item, ("r",)) for _ in range(5)]
        assert answers == [True, True, True, False, False]
    finally:
        await backend.close()


async def test_other_strategies_and_hit_go_to_redis_exactly(redis_url: str, redis_prefix: str) -> None:
    backend = lease_backend(redis_url, redis_prefix, 10)
    item = parse("3/hour")
    try:
        assert backend.hit_window_sync(item, ("t",), strategy="sliding-window-counter") is None
        found = [await backend.hit_window(item, ("t",), strategy="sliding-window-counter") for _ in range(4)]
        assert [allowed for allowed, _ in found] == [True, True, True, False]
        assert [await backend.hit(item, "b") for _ in range(4)] == [True, True, True, False]
        assert "b" not in str(list(backend._leases))
    finally:
        await backend.close()


def test_four_processes_never_exceed_the_limit(redis_url: str, redis_prefix: str) -> None:
    lease, hits = 5, 60
    results = mp_worker.run_workers(WORKERS, mp_worker.run_lease, redis_url, redis_prefix, lease, hits)
    admitted = [r[0] for _, r in results]
    assert [r[1] for _, r in results] == [0] * WORKERS
    assert 50 - WORKERS * (lease - 1) <= sum(admitted) <= 50, admitted


@pytest.mark.parametrize(("fail_open", "status"), [(True, 200), (False, 503)])
async def test_redis_down_follows_fail_open(fail_open: bool, status: int) -> None:
    # Nothing listens on port 1: every lease request fails as in the exact mode.
    cfg = config(storage="redis://127.0.0.1:1/0", strategy="fixed-window", lease=10, timeout=0.2, fail_open=fail_open)
    app = RateLimitMiddleware(ok_app, cfg)
    assert isinstance(app.backend, LeaseBackend)
    with pytest.raises(StorageUnavailable):
        await app.backend.hit_window(parse("5/hour"), ("down",))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/x")
    assert response.status_code == status
    await app.backend.close()


async def test_middleware_admits_the_limit_through_the_lease(redis_url: str, redis_prefix: str) -> None:
    cfg = config(storage=redis_url, strategy="fixed-window", lease=4, key_prefix=redis_prefix, default="10/hour")
    app = RateLimitMiddleware(ok_app, cfg)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            codes = [(await client.get("/x")).status_code for _ in range(12)]
            refused = await client.get("/x")
        assert codes == [200] * 10 + [429] * 2
        assert refused.headers["retry-after"] and int(refused.headers["retry-after"]) > 0
        assert app.stats.allowed_total == 10
    finally:
        await app.backend.close()
