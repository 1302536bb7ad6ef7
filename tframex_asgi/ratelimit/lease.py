"""Lease mode: each process takes up to ``lease`` units of a fixed window from Redis at once and
admits from them locally, so most hits cost no Redis command and build no coroutine.

Exact admission on Redis costs one script per request per limit, and most of that is redis-py's
per-command work in the server process. A lease spends that cost once per ``lease`` requests.

The bound. A lease is reserved from the shared counter atomically (one Lua script takes
``min(lease, limit - count)`` units), so all processes together never admit more than the limit
in a window. A process takes a new lease only when its own is spent, and uses one unit of it at
once, so it holds at most ``lease - 1`` unused units; a window can therefore refuse a request
while up to ``P * (lease - 1)`` units sit unused in ``P`` processes: it admits between
``limit - P * (lease - 1)`` and ``limit``. Unused units are not given back: they expire with the
window. Only one lease per key is requested at a time in a process (concurrent requests wait for
it), otherwise a burst would take one lease per request and the bound would not hold.

Fixed window only: a moving window's units expire one by one from the time they were taken, so a
unit leased early and spent late would be counted for less than a window (over-admission).

What goes through the lease: :meth:`LeaseBackend.hit_window` and :meth:`~LeaseBackend.hit_window_sync`
on the fixed window (the per-request limits). ``hit``, ``window`` and other strategies (token
budgets, the brute-force guard) go to the wrapped :class:`~.redis_backend.RedisBackend` exactly.
The headers report this process's view: its unused units plus what the window had left when the
lease was taken. Once a lease comes back short the window is full until it ends (units are never
returned), so later refusals are answered locally too. Keys are ``limits``' fixed-window keys:
exact and leasing workers can share a deployment, and the total still never exceeds the limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from limits import RateLimitItem

from tframex_asgi.errors import ConfigError
from tframex_asgi.ratelimit.protocol import RateLimitStats, WindowState

if TYPE_CHECKING:
    from tframex_asgi.ratelimit.redis_backend import RedisBackend

__all__ = ["LeaseBackend"]

FIXED = "fixed-window"

# KEYS[1] the fixed window's counter (limits' key); ARGV: expiry, limit, units wanted.
# Returns {units taken, count after, ms until the window ends}. A counter may already be past the
# limit (an exact worker counts refused hits too): nothing is taken then.
_LEASE = """
local count = tonumber(redis.call('get', KEYS[1]) or 0)
local take = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) - count)
if take > 0 then
    count = redis.call('incrby', KEYS[1], take)
else
    take = 0
end
if redis.call('ttl', KEYS[1]) == -1 then
    redis.call('expire', KEYS[1], ARGV[1])
end
return {take, count, redis.call('pttl', KEYS[1])}
"""


class _Lease:
    __slots__ = ("end", "free", "full", "left")

    def __init__(self, left: int, free: int, end: float, full: bool) -> None:
        self.left = left  # units this process may still admit
        self.free = free  # what the shared window had left after the take (the headers' view)
        self.end = end  # monotonic time the window ends
        self.full = full  # the take came back short: nothing is left in this window


class LeaseBackend:
    """:class:`~tframex_asgi.ratelimit.protocol.SyncBackend` over a :class:`RedisBackend`,
    admitting fixed-window hits from per-process leases of ``lease`` units."""

    process_local = False

    def __init__(
        self,
        inner: RedisBackend,
        lease: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sweep_every: float = 1.0,
    ) -> None:
        if lease < 1:
            raise ConfigError("lease", "must be at least 1")
        if inner.strategy != FIXED:
            raise ConfigError("strategy", f"lease mode needs strategy {FIXED!r}, not {inner.strategy!r}")
        windows = inner.windows
        if windows is None:
            raise ConfigError("storage", "lease mode needs the redis-py Redis storage")
        self.inner = inner
        self.lease = lease
        self.strategy = inner.strategy
        self.cooldown = inner.cooldown
        self.stats: RateLimitStats = inner.stats
        self._windows = windows  # inner.windows, known not to be None
        self._script = windows.client.register_script(_LEASE)
        self._leases: dict[tuple[Any, ...], _Lease] = {}
        # One lease request per key at a time (see the module docstring): its waiters retry after it.
        self._refills: dict[tuple[Any, ...], asyncio.Future[None]] = {}
        self._monotonic = monotonic
        self._sweep_every = sweep_every
        self._next_sweep = monotonic() + sweep_every

    @property
    def unavailable(self) -> bool:
        return self.inner.unavailable

    def hit_window_sync(
        self,
        item: RateLimitItem,
        key: tuple[str, ...],
        *,
        cost: int = 1,
        strategy: str | None = None,
        state: bool = True,
    ) -> tuple[bool, WindowState | None] | None:
        """The answer from this process's lease, or ``None`` (nothing consumed) when it takes
        Redis: no lease, a spent one, a window that ended, or another strategy."""
        if strategy is not None and strategy != FIXED:
            return None
        lease = self._leases.get(_lease_key(item, key))
        if lease is None:
            return None
        return self._local(lease, item, cost, state, self._monotonic())

    def _local(
        self, lease: _Lease, item: RateLimitItem, cost: int, state: bool, now: float
    ) -> tuple[bool, WindowState | None] | None:
        if now >= lease.end:
            return None
        if lease.left >= cost:
            lease.left -= cost
            if not state:
                return True, None
            return True, WindowState(item.amount, lease.left + lease.free, lease.end - now, item.get_expiry())
        if lease.full:
            return False, WindowState(item.amount, 0, lease.end - now, item.get_expiry())
        return None

    async def hit_window(
        self,
        item: RateLimitItem,
        key: tuple[str, ...],
        *,
        cost: int = 1,
        strategy: str | None = None,
        state: bool = True,
    ) -> tuple[bool, WindowState | None]:
        if strategy is not None and strategy != FIXED:
            return await self.inner.hit_window(item, key, cost=cost, strategy=strategy, state=state)
        lkey = _lease_key(item, key)
        while True:
            lease = self._leases.get(lkey)
            if lease is not None:
                answer = self._local(lease, item, cost, state, self._monotonic())
                if answer is not None:
                    return answer
            pending = self._refills.get(lkey)
            if pending is None:
                break
            await pending  # another request of this process is taking the lease: use it
        lease = await self._refill(lkey, item, key, cost)
        now = self._monotonic()
        answer = self._local(lease, item, cost, state, now)
        if answer is not None:
            return answer
        # Short of cost units (a cost above the lease size): refused, the window is full.
        return False, WindowState(item.amount, 0, max(0.0, lease.end - now), item.get_expiry())

    async def _refill(self, lkey: tuple[Any, ...], item: RateLimitItem, key: tuple[str, ...], cost: int) -> _Lease:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._refills[lkey] = done
        windows, script = self._windows, self._script
        name = windows.prefixed(item.key_for(*key))
        expiry = item.get_expiry()
        want = max(self.lease, cost)
        # The window's end counted from before the call: Redis measured its TTL later, so the
        # lease ends no later than the window does (a unit spent after it would be admitted on top
        # of the next window's full limit).
        sent = self._monotonic()
        try:
            take, count, pttl = await self.inner.call(
                "hit", lambda: windows.batcher.run(script, [name], [expiry, item.amount, want])
            )
        finally:
            del self._refills[lkey]
            done.set_result(None)
        now = self._monotonic()
        end = sent + (int(pttl) / 1000 if int(pttl) > 0 else expiry)
        old = self._leases.get(lkey)
        left = int(take) + (old.left if old is not None and now < old.end else 0)
        lease = self._leases[lkey] = _Lease(left, max(0, item.amount - int(count)), end, int(take) < want)
        if now >= self._next_sweep:
            self._sweep(now)
        return lease

    def _sweep(self, now: float) -> None:
        # Ended leases are dead weight (one per client seen): drop them, at most once per sweep_every.
        self._next_sweep = now + self._sweep_every
        for lkey in [k for k, lease in self._leases.items() if lease.end <= now]:
            del self._leases[lkey]

    async def hit(self, item: RateLimitItem, *key: str, cost: int = 1, strategy: str | None = None) -> bool:
        # Exact: token charges and the brute-force guard read the shared count back with window().
        return await self.inner.hit(item, *key, cost=cost, strategy=strategy)

    async def window(self, item: RateLimitItem, *key: str, strategy: str | None = None) -> WindowState:
        # The shared count: leased units count as used there, whether spent yet or not.
        return await self.inner.window(item, *key, strategy=strategy)

    async def clear(self, item: RateLimitItem, *key: str, strategy: str | None = None) -> None:
        self._leases.pop(_lease_key(item, key), None)
        await self.inner.clear(item, *key, strategy=strategy)

    async def ping(self) -> bool:
        return await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


def _lease_key(item: RateLimitItem, key: tuple[str, ...]) -> tuple[Any, ...]:
    """One lease per limit as ``limits`` keys it: ``10/minute`` and ``10/60 seconds`` count apart."""
    return (item.amount, item.multiples, item.GRANULARITY.name, *key)
