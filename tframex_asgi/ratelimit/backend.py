"""The counting backend: a ``limits`` strategy on memory or Redis, bounded in time.

Why ``limits``' own Redis storage: its ``redispy`` bridge takes a ready ``connection_pool`` and its Lua
scripts run unchanged on redis-py 8 (RESP3). The ``limits[redis]`` extra pins ``redis<8`` only as a
packaging constraint, so we depend on ``redis>=8`` directly and hand ``limits`` one
:class:`redis.asyncio.BlockingConnectionPool` per process (redis-py 8's default pool raises "Too many
connections" under load instead of waiting). Exactly-N admission across processes is the Lua scripts'
atomicity, checked by ``tests/ratelimit/test_multiprocess.py`` for every strategy.

Every network storage call runs under ``asyncio.timeout`` (memory storage cannot block, so it skips the
timer's cost); a failure opens a short circuit (``cooldown``) so a
dead or blackholed Redis costs one timeout per cooldown, not one per request. What to do then (fail
open or closed) is the caller's policy: this module only raises :class:`StorageUnavailable`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import STRATEGIES, RateLimiter

from tframex_asgi.errors import ConfigError, ServiceUnavailableError

if TYPE_CHECKING:
    from tframex_asgi.config.ratelimit import RateLimitConfig

__all__ = ["Backend", "RateLimitStats", "StorageUnavailable", "WindowState", "open_backend", "redis_pool"]

logger = logging.getLogger("tframex_asgi.ratelimit")
T = TypeVar("T")


class StorageUnavailable(ServiceUnavailableError):
    """The rate-limit storage failed or did not answer within the configured timeout."""

    code = "ratelimit_unavailable"


@dataclass
class RateLimitStats:
    """Process-wide counters for the metrics package (``services.extras["ratelimit_stats"]``).

    Plain ints: increments happen on the event loop thread, so they need no lock.
    """

    allowed_total: int = 0
    rejected_total: int = 0
    # Storage calls that failed or timed out, and requests skipped while the circuit was open.
    unavailable_total: int = 0
    failed_open_total: int = 0
    failed_closed_total: int = 0
    tokens_charged_total: int = 0
    auth_failures_recorded_total: int = 0
    auth_failures_blocked_total: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True, slots=True)
class WindowState:
    """One limit's window after a hit: what the RateLimit headers report."""

    limit: int
    remaining: int
    reset: float  # seconds from now until the window frees capacity
    window: int  # the limit's window in seconds


class Backend:
    """A ``limits`` rate limiter with a timeout and a circuit breaker around every call."""

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
        self.limiter = self.limiter_for(strategy)
        self.strategy = strategy
        self.timeout = timeout
        self.cooldown = cooldown
        self.stats = stats or RateLimitStats()
        self._monotonic = monotonic
        self._close = close
        # Process-wide health, not per-request state: while set, calls fail fast.
        self._open_until = 0.0

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

    async def _call(self, what: str, factory: Callable[[], Awaitable[T]]) -> T:
        if self._open_until and self._monotonic() < self._open_until:
            self.stats.unavailable_total += 1
            raise StorageUnavailable("rate-limit storage unavailable (circuit open)")
        try:
            if self.timeout is None:
                result = await factory()
            else:
                async with asyncio.timeout(self.timeout):
                    result = await factory()
        except Exception as exc:
            self.stats.unavailable_total += 1
            first = not self._open_until
            self._open_until = self._monotonic() + self.cooldown
            if first:
                # The exception text names host:port only (never the URL's password).
                logger.warning("rate-limit storage failed on %s: %s: %s", what, type(exc).__name__, exc)
            raise StorageUnavailable("rate-limit storage unavailable") from exc
        if self._open_until:
            self._open_until = 0.0
            logger.warning("rate-limit storage is answering again")
        return result

    async def hit(self, item: RateLimitItem, *key: str, cost: int = 1, strategy: str | None = None) -> bool:
        """Consume ``cost`` if the limit allows it, atomically across processes."""
        limiter = self.limiter_for(strategy)
        return await self._call("hit", lambda: limiter.hit(item, *key, cost=cost))

    async def window(self, item: RateLimitItem, *key: str, strategy: str | None = None) -> WindowState:
        limiter = self.limiter_for(strategy)
        stats = await self._call("window", lambda: limiter.get_window_stats(item, *key))
        # limits computes reset_time from time.time(), so compare with the same clock.
        reset = max(0.0, stats.reset_time - time.time())
        return WindowState(item.amount, max(0, int(stats.remaining)), reset, item.get_expiry())

    async def clear(self, item: RateLimitItem, *key: str, strategy: str | None = None) -> None:
        limiter = self.limiter_for(strategy)
        await self._call("clear", lambda: limiter.clear(item, *key))

    async def ping(self) -> bool:
        try:
            return bool(await self._call("ping", self.storage.check))
        except StorageUnavailable:
            return False

    async def close(self) -> None:
        if self._close is not None:
            await self._close()


class _MemoryStorage(MemoryStorage):
    """``limits``' memory storage, sweeping expired entries at most once a second.

    Upstream starts a sweep (one thread hop per key) after every hit once the previous sweep has
    ended, which costs ~0.3 ms of CPU per request with a few hundred clients. The sweep only frees
    memory: expired entries are already ignored when counting, so sweeping less often is safe.
    """

    _next_sweep = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


def redis_pool(url: str, cfg: RateLimitConfig) -> Any:
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


def open_backend(cfg: RateLimitConfig, *, stats: RateLimitStats | None = None, pool: Any = None) -> Backend:
    """A backend for ``cfg.storage``; ``pool`` reuses a caller's Redis connection pool."""
    scheme, _, rest = cfg.storage.partition("://")
    scheme = scheme.removeprefix("async+")
    close: Callable[[], Awaitable[None]] | None = None
    storage: Storage
    if scheme == "memory":
        storage = _MemoryStorage()
    elif scheme in ("redis", "rediss"):
        url = f"{scheme}://{rest}"
        if pool is None:
            pool = redis_pool(url, cfg)
            close = pool.aclose
        storage = RedisStorage(
            f"async+{url}", implementation="redispy", connection_pool=pool, key_prefix=cfg.key_prefix
        )
    else:
        raise ConfigError("storage", f"unsupported rate-limit storage {cfg.storage!r}")
    timeout = None if scheme == "memory" else cfg.timeout
    return Backend(storage, cfg.strategy, timeout=timeout, cooldown=cfg.cooldown, stats=stats, close=close)
