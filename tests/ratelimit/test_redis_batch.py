"""Concurrent rate-limit hits on Redis go out together (one pipelined round trip per loop tick),
each still an atomic script: exactly the limit is admitted, a caller that gave up before its
batch left is not counted, and a Redis that lost its scripts gets them loaded again."""

from __future__ import annotations

import asyncio

import redis
from limits import parse

from tests import own_services
from tests.own_services import OwnRedis
from tests.ratelimit.helpers import config
from tframex_asgi.ratelimit import open_backend
from tframex_asgi.ratelimit.redis_batch import ScriptBatcher

own_redis = own_services.own_redis  # the fixture


def _batcher(backend: object) -> ScriptBatcher:
    windows = backend.windows  # type: ignore[attr-defined]  # the one-trip scripts' batcher
    assert windows is not None
    return windows.batcher


async def test_concurrent_hits_share_round_trips_and_admit_exactly_the_limit(redis_url: str, redis_prefix: str) -> None:
    for strategy in ("fixed-window", "moving-window"):
        # A generous timeout: this counts round trips, and the first one (connect, load the script)
        # may take longer than the default 0.25 s on a loaded machine.
        backend = open_backend(config(storage=redis_url, strategy=strategy, key_prefix=redis_prefix, timeout=5.0))
        item = parse("30/hour")
        try:
            found = await asyncio.gather(*(backend.hit_window(item, ("batch", strategy)) for _ in range(100)))
        finally:
            await backend.close()
        assert sum(allowed for allowed, _ in found) == 30, strategy
        remaining = sorted(state.remaining for allowed, state in found if allowed and state)
        assert remaining == list(range(30)), strategy  # every admitted hit saw its own count
        batcher = _batcher(backend)
        assert batcher.calls == 100
        assert batcher.batches < 10, batcher.batches  # 100 hits in a few round trips, not 100


async def test_a_caller_that_gave_up_before_the_batch_left_is_not_counted(redis_url: str, redis_prefix: str) -> None:
    backend = open_backend(config(storage=redis_url, strategy="fixed-window", key_prefix=redis_prefix))
    item = parse("10/hour")
    try:
        tasks = [asyncio.ensure_future(backend.hit_window(item, ("gaveup",))) for _ in range(3)]
        await asyncio.sleep(0)  # the three are queued; the batch leaves on the next tick
        tasks[1].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(done[1], asyncio.CancelledError)
        _, state = await backend.hit_window(item, ("gaveup",))
    finally:
        await backend.close()
    assert state is not None and state.remaining == 7  # three counted: two of the first three, then this one


async def test_scripts_flushed_by_redis_are_loaded_again(own_redis: OwnRedis, redis_prefix: str) -> None:
    backend = open_backend(config(storage=own_redis.url, strategy="moving-window", key_prefix=redis_prefix))
    item = parse("5/hour")
    admin = redis.Redis.from_url(own_redis.url)
    try:
        assert (await backend.hit_window(item, ("flush",)))[0]
        admin.script_flush()  # as after a restart: the next EVALSHA answers NOSCRIPT
        found = await asyncio.gather(*(backend.hit_window(item, ("flush",)) for _ in range(6)))
    finally:
        admin.close()
        await backend.close()
    assert [allowed for allowed, _ in found].count(True) == 4
    assert backend.stats.unavailable_total == 0


def test_commands_are_packed_as_redis_py_packs_them() -> None:
    from redis.asyncio.connection import Connection

    from tframex_asgi.ratelimit.redis_batch import _pack

    conn = Connection()
    for parts in [
        ("EVALSHA", "a" * 40, 1, "LIMITS:LIMITER/k/1/hour", 3600, 1),
        ("EVALSHA", "b" * 40, 1, "LIMITS:LIMITER/ключ/ü/1/minute", 1765000000.123456, 50, 60, 1),
        ("SCRIPT", "LOAD", "return redis.call('get', KEYS[1])\n"),
    ]:
        assert _pack(parts) == b"".join(conn.pack_command(*parts)), parts
