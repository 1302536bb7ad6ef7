"""The ``memory://`` backend: the :mod:`~tframex_asgi.ratelimit.memory` engines, in this process.

It does not go through ``limits``' storage: the engines apply the same strategies synchronously
(no lock, no timer, no second call for the headers), so the middleware can count without building
a coroutine per limit (:meth:`MemoryBackend.hit_window_sync`). Nothing here can fail or block, so
there is no timeout and no circuit.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from limits import RateLimitItem

from tframex_asgi.errors import ConfigError
from tframex_asgi.ratelimit.memory import ENGINES, MemoryEngine
from tframex_asgi.ratelimit.protocol import RateLimitStats, WindowState

__all__ = ["MemoryBackend", "MemoryStore"]


class MemoryStore:
    """The counts: one :class:`~tframex_asgi.ratelimit.memory.MemoryEngine` per strategy, swept of
    expired keys at most once per ``sweep_every`` seconds (expired keys already count as empty, so
    sweeping only frees memory)."""

    def __init__(self, sweep_every: float = 1.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.engines: dict[str, MemoryEngine] = {}
        self.sweep_every = sweep_every
        self.monotonic = monotonic
        # Read on every hit (no method call on the common path); maybe_sweep moves it on.
        self.next_sweep = monotonic() + sweep_every

    def engine(self, strategy: str) -> MemoryEngine:
        engine = self.engines.get(strategy)
        if engine is None:
            if strategy not in ENGINES:
                raise ConfigError("strategy", f"unknown strategy {strategy!r} ({', '.join(ENGINES)})")
            engine = self.engines[strategy] = ENGINES[strategy]()
        return engine

    def maybe_sweep(self) -> None:
        now = self.monotonic()
        if now >= self.next_sweep:
            self.next_sweep = now + self.sweep_every
            for engine in self.engines.values():
                engine.sweep()

    async def check(self) -> bool:
        return True

    async def reset(self) -> int:
        count = sum(len(e) for e in self.engines.values())
        self.engines.clear()
        return count


class MemoryBackend:
    """:class:`~tframex_asgi.ratelimit.protocol.Backend` on in-process memory."""

    # Only this process counts, and the storage is this process: it cannot be unavailable.
    process_local = True
    unavailable = False

    def __init__(self, strategy: str, *, cooldown: float = 5.0, stats: RateLimitStats | None = None) -> None:
        self.store = MemoryStore()
        self.strategy = strategy
        self.default_engine = self.store.engine(strategy)
        self.cooldown = cooldown
        self.stats = stats or RateLimitStats()

    def engine_for(self, strategy: str | None) -> MemoryEngine:
        return self.default_engine if strategy is None else self.store.engine(strategy)

    async def hit(self, item: RateLimitItem, *key: str, cost: int = 1, strategy: str | None = None) -> bool:
        return self.hit_window_sync(item, key, cost=cost, strategy=strategy, state=False)[0]

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
        if store.monotonic() >= store.next_sweep:
            store.maybe_sweep()
        if allowed and not state:
            return True, None
        reset = reset_at - time.time()
        return allowed, WindowState(amount, remaining, reset if reset > 0.0 else 0.0, expiry)

    async def window(self, item: RateLimitItem, *key: str, strategy: str | None = None) -> WindowState:
        expiry = item.get_expiry()
        remaining, reset_at = self.engine_for(strategy).stats((item.amount, expiry, *key), item.amount, expiry)
        return WindowState(item.amount, remaining, max(0.0, reset_at - time.time()), expiry)

    async def clear(self, item: RateLimitItem, *key: str, strategy: str | None = None) -> None:
        self.engine_for(strategy).clear((item.amount, item.get_expiry(), *key))

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
