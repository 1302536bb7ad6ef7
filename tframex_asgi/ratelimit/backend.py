"""The counting backend: a ``limits`` strategy on memory or Redis, bounded in time.

Why ``limits``' own Redis storage: its ``redispy`` bridge takes a ready ``connection_pool`` and its Lua
scripts run unchanged on redis-py 8 (RESP3). The ``limits[redis]`` extra pins ``redis<8`` only as a
packaging constraint, so we depend on ``redis>=8`` directly and hand ``limits`` one
:class:`redis.asyncio.BlockingConnectionPool` per process (redis-py 8's default pool raises "Too many
connections" under load instead of waiting). Exactly-N admission across processes is the Lua scripts'
atomicity, checked by ``tests/ratelimit/test_multiprocess.py`` for every strategy.

``memory://`` does not go through ``limits``' storage at all: :mod:`tframex_asgi.ratelimit.memory`
applies the same strategies synchronously (no lock, no timer, no second call for the headers),
which is what makes the layer cost a few microseconds. :meth:`Backend.hit_window` is the one call
per limit per request: it consumes and returns the window the headers report.

Every network storage call is bounded by ``timeout`` in total (pool wait, connect, command), as
``asyncio.timeout`` would bound it, but without a timer per call: ``asyncio.timeout`` costs
~7-14 µs a call (a ``Timeout`` object, a heap push and a cancelled handle). :class:`_Deadlines`
keeps the in-flight calls in start order (one timeout for all, so that is deadline order) under a
single timer armed at the earliest deadline; a call that ends just leaves the dict, and a call
still running at its deadline has its task cancelled, which ``_call`` turns into a timeout exactly
as ``asyncio.timeout`` does (``uncancel`` against the count at entry, so an outside cancellation
still propagates). Memory storage cannot block, so it has no deadline at all. A failure opens a
short circuit (``cooldown``) so a
dead or blackholed Redis costs one timeout per cooldown, not one per request. What to do then (fail
open or closed) is the caller's policy: this module only raises :class:`StorageUnavailable`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from limits import RateLimitItem
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import STRATEGIES, RateLimiter

from tframex_asgi.errors import ConfigError, ServiceUnavailableError
from tframex_asgi.ratelimit.memory import ENGINES, MemoryEngine
from tframex_asgi.ratelimit.redis_window import STRATEGIES as _ONE_TRIP
from tframex_asgi.ratelimit.redis_window import RedisWindows

if TYPE_CHECKING:
    from tframex_asgi.config.ratelimit import RateLimitConfig

__all__ = [
    "Backend",
    "MemoryBackend",
    "MemoryStore",
    "RateLimitStats",
    "StorageUnavailable",
    "WindowState",
    "open_backend",
    "redis_pool",
]

logger = logging.getLogger("tframex_asgi.ratelimit")
T = TypeVar("T")


class StorageUnavailable(ServiceUnavailableError):
    """The rate-limit storage failed or did not answer within the configured timeout."""

    code = "ratelimit_unavailable"
    # Seconds a client should wait (the circuit's cooldown); set by whoever answers the 503.
    retry_after: float = 1.0


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


class WindowState(NamedTuple):
    """One limit's window after a hit: what the RateLimit headers report (immutable; a tuple
    because one is built per limit per request)."""

    limit: int
    remaining: int
    reset: float  # seconds from now until the window frees capacity
    window: int  # the limit's window in seconds


class _Watch:
    """One in-flight storage call: its task, deadline and the task's cancel count at entry."""

    __slots__ = ("cancelling", "deadline", "fired", "task")

    def __init__(self, task: asyncio.Task[Any], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.cancelling = task.cancelling()
        self.fired = False


class _Deadlines:
    """Deadlines of in-flight calls under one timer (see the module docstring)."""

    def __init__(self) -> None:
        # Insertion order is start order; with one timeout per backend it is deadline order.
        self._watches: dict[_Watch, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, factory: Callable[[], Awaitable[T]], seconds: float) -> T:
        """``await factory()``, raising TimeoutError once ``seconds`` have passed."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - not inside a task: fall back to the stdlib
            async with asyncio.timeout(seconds):
                return await factory()
        if loop is not self._loop:  # first use, or a new event loop (tests): forget the old one
            self._loop, self._timer = loop, None
            self._watches.clear()
        watch = _Watch(task, loop.time() + seconds)
        self._watches[watch] = None
        if self._timer is None:
            self._timer = loop.call_at(watch.deadline, self._expire)
        try:
            return await factory()
        except asyncio.CancelledError as exc:
            if watch.fired:
                # Ours only if no one else cancelled the task meanwhile (as asyncio.timeout).
                watch.fired = False
                if task.uncancel() <= watch.cancelling:
                    raise TimeoutError from exc
            raise
        finally:
            self._watches.pop(watch, None)
            if watch.fired:  # fired but the call ended anyway: take our cancel request back
                task.uncancel()

    def _expire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        watches = self._watches
        while watches:
            watch = next(iter(watches))
            if watch.deadline > now:
                self._timer = loop.call_at(watch.deadline, self._expire)
                return
            del watches[watch]
            if not watch.task.done():
                watch.fired = True
                watch.task.cancel()


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
        self._deadlines = _Deadlines()
        # Hit and window in one round trip on Redis (fixed and moving window; see redis_window.py).
        self._windows = RedisWindows.for_storage(storage)

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
                result = await self._deadlines.run(factory, self.timeout)
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

    async def hit_window(
        self,
        item: RateLimitItem,
        key: tuple[str, ...],
        *,
        cost: int = 1,
        strategy: str | None = None,
        state: bool = True,
    ) -> tuple[bool, WindowState | None]:
        """Consume ``cost`` and report the window: ``(allowed, state)``. ``state=False`` asks for
        the window only when the hit is refused (``None`` otherwise).

        On Redis, the fixed and moving window answer both in one script (:mod:`.redis_window`);
        otherwise the window is a second call: if it fails after a refused hit, the refusal stands
        with a full window assumed, after an allowed hit it raises."""
        if state and self._windows is not None:
            how = strategy or self.strategy
            if how in _ONE_TRIP:
                windows = self._windows
                allowed, remaining, reset = await self._call("hit", lambda: windows.hit_window(how, item, key, cost))
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


class MemoryStore:
    """The ``memory://`` counts: one :class:`~tframex_asgi.ratelimit.memory.MemoryEngine` per
    strategy, swept of expired keys at most once a second (expired keys already count as empty,
    so sweeping only frees memory)."""

    def __init__(self, sweep_every: float = 1.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.engines: dict[str, MemoryEngine] = {}
        self.sweep_every = sweep_every
        self._monotonic = monotonic
        self._next_sweep = monotonic() + sweep_every

    def engine(self, strategy: str) -> MemoryEngine:
        engine = self.engines.get(strategy)
        if engine is None:
            if strategy not in ENGINES:
                raise ConfigError("strategy", f"unknown strategy {strategy!r} ({', '.join(ENGINES)})")
            engine = self.engines[strategy] = ENGINES[strategy]()
        return engine

    def maybe_sweep(self) -> None:
        now = self._monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.sweep_every
            for engine in self.engines.values():
                engine.sweep()

    async def check(self) -> bool:
        return True

    async def reset(self) -> int:
        count = sum(len(e) for e in self.engines.values())
        self.engines.clear()
        return count


class MemoryBackend(Backend):
    """:class:`Backend` on in-process memory: synchronous counting, nothing can fail or block."""

    def __init__(self, strategy: str, *, cooldown: float = 5.0, stats: RateLimitStats | None = None) -> None:
        self.store = MemoryStore()
        self.storage = self.store  # type: ignore[assignment]  # ``ping`` and resets use it
        self.strategy = strategy
        self.default_engine = self.store.engine(strategy)
        self.timeout = None
        self.cooldown = cooldown
        self.stats = stats or RateLimitStats()
        self._monotonic = time.monotonic
        self._close = None
        self._open_until = 0.0
        self._limiters = {}

    def limiter_for(self, strategy: str | None) -> RateLimiter:
        raise NotImplementedError("memory:// counts without a limits RateLimiter; use engine_for()")

    def engine_for(self, strategy: str | None) -> MemoryEngine:
        return self.default_engine if strategy is None else self.store.engine(strategy)

    async def hit(self, item: RateLimitItem, *key: str, cost: int = 1, strategy: str | None = None) -> bool:
        return (await self.hit_window(item, key, cost=cost, strategy=strategy, state=False))[0]

    async def hit_window(
        self,
        item: RateLimitItem,
        key: tuple[str, ...],
        *,
        cost: int = 1,
        strategy: str | None = None,
        state: bool = True,
    ) -> tuple[bool, WindowState | None]:
        return self.hit_window_sync(item, key, cost=cost, strategy=strategy, state=state)

    def hit_window_sync(
        self,
        item: RateLimitItem,
        key: tuple[str, ...],
        *,
        cost: int = 1,
        strategy: str | None = None,
        state: bool = True,
    ) -> tuple[bool, WindowState | None]:
        """:meth:`hit_window` without a coroutine: memory counting never waits."""
        engine = self.default_engine if strategy is None else self.store.engine(strategy)
        amount = item.amount
        expiry = item.get_expiry()
        # The item's amount and window are part of the key, as in limits' key_for.
        allowed, remaining, reset_at = engine.hit((amount, expiry, *key), amount, expiry, cost)
        store = self.store
        if store._monotonic() >= store._next_sweep:
            store.maybe_sweep()
        if allowed and not state:
            return True, None
        reset = reset_at - time.time()
        return allowed, WindowState(amount, remaining, reset if reset > 0.0 else 0.0, expiry)

    async def window(self, item: RateLimitItem, *key: str, strategy: str | None = None) -> WindowState:
        engine = self.engine_for(strategy)
        expiry = item.get_expiry()
        remaining, reset_at = engine.stats((item.amount, expiry, *key), item.amount, expiry)
        return WindowState(item.amount, remaining, max(0.0, reset_at - time.time()), expiry)

    async def clear(self, item: RateLimitItem, *key: str, strategy: str | None = None) -> None:
        self.engine_for(strategy).clear((item.amount, item.get_expiry(), *key))

    async def ping(self) -> bool:
        return True


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
        if cfg.strategy not in ENGINES:
            raise ConfigError("strategy", f"unknown strategy {cfg.strategy!r} ({', '.join(ENGINES)})")
        return MemoryBackend(cfg.strategy, cooldown=cfg.cooldown, stats=stats)
    if scheme in ("redis", "rediss"):
        url = f"{scheme}://{rest}"
        if pool is None:
            pool = redis_pool(url, cfg)
            close = pool.aclose
        storage = RedisStorage(
            f"async+{url}", implementation="redispy", connection_pool=pool, key_prefix=cfg.key_prefix
        )
    else:
        raise ConfigError("storage", f"unsupported rate-limit storage {cfg.storage!r}")
    return Backend(storage, cfg.strategy, timeout=cfg.timeout, cooldown=cfg.cooldown, stats=stats, close=close)
