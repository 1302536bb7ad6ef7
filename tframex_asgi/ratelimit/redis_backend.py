"""The ``redis://`` backend: ``limits``' strategies on its Redis storage, bounded in time.

Why ``limits``' own Redis storage: its ``redispy`` bridge takes a ready ``connection_pool`` and its
Lua scripts run unchanged on redis-py 8 (RESP3). The ``limits[redis]`` extra pins ``redis<8`` only
as a packaging constraint, so we depend on ``redis>=8`` directly and hand ``limits`` one
:class:`redis.asyncio.BlockingConnectionPool` per process (redis-py 8's default pool raises "Too
many connections" under load instead of waiting). Exactly-N admission across processes is the Lua
scripts' atomicity, checked by ``tests/ratelimit/test_multiprocess.py`` for every strategy. The
fixed and moving window take one round trip per limit (:mod:`.redis_window`); the sliding window
counter goes through ``limits`` unchanged.

Every storage call is bounded by ``timeout`` in total (pool wait, connect, command) by
:class:`~tframex_asgi.ratelimit.deadlines.Deadlines`, and a failure opens the
:class:`~tframex_asgi.ratelimit.circuit.Circuit`. The Redis driver is imported only when a pool is
built (:func:`redis_pool`) or the one-trip scripts are registered.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from limits import RateLimitItem
from limits.aio.storage import Storage
from limits.aio.strategies import STRATEGIES, RateLimiter

from tframex_asgi.errors import ConfigError
from tframex_asgi.ratelimit.circuit import Circuit
from tframex_asgi.ratelimit.deadlines import Deadlines
from tframex_asgi.ratelimit.protocol import RateLimitStats, StorageUnavailable, WindowState
from tframex_asgi.ratelimit.redis_window import STRATEGIES as _ONE_TRIP
from tframex_asgi.ratelimit.redis_window import RedisWindows

if TYPE_CHECKING:
    from tframex_asgi.config.ratelimit import RateLimitConfig

__all__ = ["RedisBackend", "redis_pool"]

T = TypeVar("T")


class RedisBackend:
    """:class:`~tframex_asgi.ratelimit.protocol.Backend` on a ``limits`` storage (Redis in
    practice), with a timeout and a circuit breaker around every call."""

    # Other workers count too: only the storage knows which keys have a count.
    process_local = False

    def __init__(
        self,
        storage: Storage,
        strategy: str,
        *,
        timeout: float | None,
        cooldown: float,
        stats: RateLimitStats | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.storage = storage
        # One limiter per strategy on the same storage (token budgets may use their own strategy).
        self._limiters: dict[str, RateLimiter] = {}
        self.strategy = strategy
        self.limiter = self.limiter_for(strategy)
        self.timeout = timeout
        self.cooldown = cooldown
        self.stats = stats or RateLimitStats()
        self.circuit = Circuit(cooldown, self.stats, monotonic)
        self._close = close
        self._deadlines = Deadlines()
        # Hit and window in one round trip (fixed and moving window; None off redis-py); the
        # lease wrapper sends its own script through the same batcher.
        self.windows = RedisWindows.for_storage(storage)

    @property
    def unavailable(self) -> bool:
        return bool(self.circuit.open_until)

    def limiter_for(self, strategy: str | None) -> RateLimiter:
        if strategy is None:
            return self.limiter
        limiter = self._limiters.get(strategy)
        if limiter is None:
            if strategy not in STRATEGIES:
                raise ConfigError("strategy", f"unknown strategy {strategy!r} ({', '.join(STRATEGIES)})")
            # STRATEGIES maps names to concrete subclasses; mypy sees the abstract base.
            limiter = self._limiters[strategy] = STRATEGIES[strategy](self.storage)  # type: ignore[abstract]
        return limiter

    async def call(self, what: str, factory: Callable[[], Awaitable[T]]) -> T:
        """``await factory()`` (one storage call) under the timeout and the circuit breaker."""
        circuit = self.circuit
        if circuit.open_until:
            circuit.check()
        try:
            if self.timeout is None:
                result = await factory()
            else:
                result = await self._deadlines.run(factory, self.timeout)
        except Exception as exc:
            raise circuit.failed(what, exc) from exc
        if circuit.open_until:
            circuit.answered()
        return result

    async def hit(self, item: RateLimitItem, *key: str, cost: int = 1, strategy: str | None = None) -> bool:
        limiter = self.limiter_for(strategy)
        return await self.call("hit", lambda: limiter.hit(item, *key, cost=cost))

    async def hit_window(
        self,
        item: RateLimitItem,
        key: tuple[str, ...],
        *,
        cost: int = 1,
        strategy: str | None = None,
        state: bool = True,
    ) -> tuple[bool, WindowState | None]:
        """The fixed and moving window answer both in one script (:mod:`.redis_window`);
        otherwise the window is a second call: if it fails after a refused hit, the refusal
        stands with a full window assumed, after an allowed hit it raises."""
        if state and self.windows is not None:
            how = strategy or self.strategy
            if how in _ONE_TRIP:
                windows = self.windows
                allowed, remaining, reset = await self.call("hit", lambda: windows.hit_window(how, item, key, cost))
                return allowed, WindowState(item.amount, remaining, reset, item.get_expiry())
        allowed = await self.hit(item, *key, cost=cost, strategy=strategy)
        if allowed and not state:
            return True, None
        try:
            return allowed, await self.window(item, *key, strategy=strategy)
        except StorageUnavailable:
            if allowed:
                raise
            expiry = item.get_expiry()
            return False, WindowState(item.amount, 0, float(expiry), expiry)

    async def window(self, item: RateLimitItem, *key: str, strategy: str | None = None) -> WindowState:
        limiter = self.limiter_for(strategy)
        stats = await self.call("window", lambda: limiter.get_window_stats(item, *key))
        # limits computes reset_time from time.time(), so compare with the same clock.
        reset = max(0.0, stats.reset_time - time.time())
        return WindowState(item.amount, max(0, int(stats.remaining)), reset, item.get_expiry())

    async def clear(self, item: RateLimitItem, *key: str, strategy: str | None = None) -> None:
        limiter = self.limiter_for(strategy)
        await self.call("clear", lambda: limiter.clear(item, *key))

    async def ping(self) -> bool:
        try:
            return bool(await self.call("ping", self.storage.check))
        except StorageUnavailable:
            return False

    async def close(self) -> None:
        if self._close is not None:
            await self._close()


def redis_pool(url: str, cfg: RateLimitConfig) -> Any:
    """One process-wide blocking pool for ``url`` (a ``redis://`` or ``rediss://`` URL)."""
    try:
        import redis.asyncio as redis_asyncio
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("storage", "redis:// needs redis>=8: pip install 'tframex-asgi[redis]'") from exc
    # Waiting for a pooled connection, connecting and each command are all bounded by the timeout.
    return redis_asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=cfg.max_connections,
        timeout=cfg.timeout,
        socket_connect_timeout=cfg.timeout,
        socket_timeout=cfg.timeout,
    )
