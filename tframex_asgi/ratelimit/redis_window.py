"""One Redis round trip per limit: the hit and the window the headers report, in one Lua script.

Through ``limits`` alone, :meth:`RedisBackend.hit_window
<tframex_asgi.ratelimit.redis_backend.RedisBackend.hit_window>` would take two or three commands:
the hit (a script), then ``get_window_stats`` (a second script for the moving window, ``GET`` and
``TTL`` for the fixed window), each a network round trip plus redis-py's per-command work.

The scripts here do exactly what ``limits`` 5.8's scripts do (``acquire_moving_window.lua`` then
``moving_window.lua``; ``incr_expire.lua`` then ``GET``/``TTL``), on the same keys, and return
both answers at once. Keys and decisions are shared with ``limits``: a deployment can mix workers
that use either path, and the sliding window counter (or any other storage) keeps going through
``limits`` unchanged. ``tests/ratelimit/test_redis_window.py`` compares the two hit for hit.

The scripts of concurrent requests go out together, one pipelined round trip per loop tick
(:mod:`.redis_batch`); each is still one atomic ``EVALSHA``.
"""

from __future__ import annotations

import time
from typing import Any

from limits import RateLimitItem

from tframex_asgi.ratelimit.redis_batch import ScriptBatcher, pack_script
from tframex_asgi.util import memo_put

__all__ = ["RedisWindows"]

# KEYS[1] counter; ARGV: expiry, cost. Returns {count after the hit, ttl}.
_FIXED = """
local current = redis.call('incrby', KEYS[1], ARGV[2])
if tonumber(current) == tonumber(ARGV[2]) then
    redis.call('expire', KEYS[1], ARGV[1])
end
return {current, redis.call('ttl', KEYS[1])}
"""

# KEYS[1] list of hit times, newest first; ARGV: now, limit, expiry, cost.
# Returns {1 if acquired else 0, oldest entry in the window (as text) or '', entries in the window}.
_MOVING = """
local timestamp = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local amount = tonumber(ARGV[4])
local acquired = 0
if amount <= limit then
    local entry = redis.call('lindex', KEYS[1], limit - amount)
    if not (entry and tonumber(entry) >= timestamp - expiry) then
        local entries = {}
        for i = 1, amount do
            entries[i] = timestamp
        end
        for i = 1, #entries, 5000 do
            redis.call('lpush', KEYS[1], unpack(entries, i, math.min(i + 4999, #entries)))
        end
        redis.call('ltrim', KEYS[1], 0, limit - 1)
        redis.call('expire', KEYS[1], expiry)
        acquired = 1
    end
end
local target = timestamp - expiry
local low, high, found = 0, limit - 1, nil
while low <= high do
    local mid = math.floor((low + high) / 2)
    local val = tonumber(redis.call('lindex', KEYS[1], mid))
    if val and val >= target then
        found = mid
        low = mid + 1
    else
        high = mid - 1
    end
end
if found then
    return {acquired, redis.call('lindex', KEYS[1], found), found + 1}
end
return {acquired, '', 0}
"""

STRATEGIES = frozenset({"fixed-window", "moving-window"})
# Packed fixed-window commands kept per (limit, key, cost): one per active client and limit.
_WIRES = 4096


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisWindows:
    """``hit_window`` for the fixed and moving window on ``limits``' Redis storage (redis-py)."""

    def __init__(self, storage: Any) -> None:
        bridge = storage.bridge
        self._prefixed = self.prefixed = bridge.prefixed_key
        # Public for the lease mode (:mod:`.lease`), which registers its own script on the same batcher.
        self.client = client = bridge.get_connection()
        self._fixed = client.register_script(_FIXED)
        self._moving = client.register_script(_MOVING)
        self.batcher = ScriptBatcher(client.connection_pool)
        self._fixed_wires: dict[tuple[int, tuple[str, ...], int], tuple[RateLimitItem, bytes]] = {}

    @classmethod
    def for_storage(cls, storage: Any) -> RedisWindows | None:
        """None unless ``storage`` is ``limits``' Redis storage on the redis-py bridge."""
        from limits.aio.storage.redis.redispy import RedispyBridge

        return cls(storage) if isinstance(getattr(storage, "bridge", None), RedispyBridge) else None

    async def hit_window(
        self, strategy: str, item: RateLimitItem, key: tuple[str, ...], cost: int
    ) -> tuple[bool, int, float]:
        """``(allowed, remaining, reset seconds from now)`` after consuming ``cost``."""
        if strategy == "fixed-window":
            # The same counter at the same cost is the same command every time: packed once. The
            # limit by identity (RateLimitItem's == ignores its namespace, which is in the key),
            # held by the entry so its id cannot be reused meanwhile. Limits are built from the
            # frozen config and never changed after their first use.
            memo_key = (id(item), key, cost)
            found = self._fixed_wires.get(memo_key)
            if found is None or found[0] is not item:
                name = self._prefixed(item.key_for(*key))
                found = (item, pack_script(self._fixed, [name], [item.get_expiry(), cost]))
                memo_put(self._fixed_wires, memo_key, found, _WIRES)
            count, ttl = await self.batcher.run_packed(self._fixed, found[1])
            count = int(count)
            return count <= item.amount, max(0, item.amount - count), float(max(int(ttl), 0))
        name = self._prefixed(item.key_for(*key))
        expiry = item.get_expiry()
        now = time.time()
        acquired, oldest, count = await self.batcher.run(self._moving, [name], [now, item.amount, expiry, cost])
        start = float(_text(oldest)) if int(count) else now
        reset = max(0.0, start + expiry - time.time())
        return bool(int(acquired)), max(0, item.amount - int(count)), reset
