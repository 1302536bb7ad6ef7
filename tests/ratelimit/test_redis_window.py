"""One round trip per limit on Redis: the combined scripts decide and report exactly as ``limits``."""

from __future__ import annotations

import time

import pytest
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import STRATEGIES as LIMITS

from tests.ratelimit.helpers import config, redis_backend
from tframex_asgi.ratelimit import open_backend
from tframex_asgi.ratelimit.redis_window import RedisWindows

ONE_TRIP = ["fixed-window", "moving-window"]
COSTS = [1, 1, 2, 1, 3, 1, 1, 7, 1, 1]


@pytest.mark.parametrize("strategy", ONE_TRIP)
async def test_hit_window_matches_limits_hit_then_window(redis_url: str, redis_prefix: str, strategy: str) -> None:
    """The same sequence of costs on two keys: ours in one script, limits' hit + get_window_stats."""
    storage = RedisStorage(f"async+{redis_url}", implementation="redispy", key_prefix=redis_prefix)
    windows = RedisWindows.for_storage(storage)
    assert windows is not None
    limiter = LIMITS[strategy](storage)
    item = parse("6/minute")
    for cost in COSTS:
        ours = await windows.hit_window(strategy, item, ("ours",), cost)
        allowed = await limiter.hit(item, "theirs", cost=cost)
        stats = await limiter.get_window_stats(item, "theirs")
        theirs = (allowed, max(0, int(stats.remaining)), max(0.0, stats.reset_time - time.time()))
        assert ours[:2] == theirs[:2], cost
        assert ours[2] == pytest.approx(theirs[2], abs=1.5)


@pytest.mark.parametrize("strategy", ONE_TRIP)
async def test_backend_uses_one_script_and_shares_keys_with_limits(
    redis_url: str, redis_prefix: str, strategy: str
) -> None:
    backend = redis_backend(storage=redis_url, key_prefix=redis_prefix, strategy=strategy)
    item = parse("3/minute")
    limiter = backend.limiter_for(strategy)

    async def no_second_call(*args: object, **kwargs: object) -> None:
        raise AssertionError("the window came from a second call")

    limiter.get_window_stats = no_second_call  # type: ignore[method-assign]
    try:
        first = await backend.hit_window(item, ("k",), state=True)
        assert first[0] and first[1] is not None and first[1].remaining == 2
        assert await backend.hit(item, "k", strategy=strategy)  # limits' own hit: the same key
        second = await backend.hit_window(item, ("k",), state=True)
        assert second[0] and second[1] is not None and second[1].remaining == 0
        refused = await backend.hit_window(item, ("k",), state=True)
        assert refused[0] is False and refused[1] is not None and refused[1].remaining == 0
        assert 0 < refused[1].reset <= 60
    finally:
        await backend.close()


async def test_other_storages_and_strategies_keep_the_limits_path(redis_url: str, redis_prefix: str) -> None:
    assert RedisWindows.for_storage(object()) is None
    backend = open_backend(config(storage=redis_url, key_prefix=redis_prefix, strategy="sliding-window-counter"))
    try:
        allowed, state = await backend.hit_window(parse("2/minute"), ("s",), state=True)
        assert allowed and state is not None and state.remaining == 1
    finally:
        await backend.close()


async def test_kept_fixed_window_commands_never_mix_limits_keys_or_costs(redis_url: str, redis_prefix: str) -> None:
    """The packed command is kept per limit (by identity), key and cost: limits that compare equal
    but count apart (another namespace), other keys and other costs each get their own counter."""
    storage = RedisStorage(f"async+{redis_url}", implementation="redispy", key_prefix=redis_prefix)
    windows = RedisWindows.for_storage(storage)
    assert windows is not None
    chat, tools = parse("5/minute"), parse("5/minute")
    tools.namespace = "TOOLS"
    assert chat == tools and chat.key_for("a") != tools.key_for("a")
    seen = [(await windows.hit_window("fixed-window", chat, ("a",), 1))[1] for _ in range(3)]
    assert seen == [4, 3, 2]
    assert (await windows.hit_window("fixed-window", tools, ("a",), 1))[1] == 4  # its own counter
    assert (await windows.hit_window("fixed-window", chat, ("b",), 1))[1] == 4  # another key
    assert (await windows.hit_window("fixed-window", chat, ("a",), 2))[1] == 0  # cost 2 on chat/a
    assert (await windows.hit_window("fixed-window", chat, ("a",), 1))[:2] == (False, 0)
