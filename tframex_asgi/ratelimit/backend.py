"""The counting backend for the rate limiter: :func:`open_backend` picks one by URL scheme.

* ``memory://``: :class:`~tframex_asgi.ratelimit.memory_backend.MemoryBackend`, one process;
* ``redis://``, ``rediss://``: :class:`~tframex_asgi.ratelimit.redis_backend.RedisBackend`,
  shared by every worker; with ``lease: N`` wrapped in
  :class:`~tframex_asgi.ratelimit.lease.LeaseBackend` (per-process leases of a fixed window).

Both implement the :class:`~tframex_asgi.ratelimit.protocol.Backend` protocol, which is all the
middleware and the brute-force guard rely on. The names below stay importable from here. The
Redis driver is imported only when a ``redis://`` backend is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from limits.aio.storage import RedisStorage

from tframex_asgi.errors import ConfigError
from tframex_asgi.ratelimit.lease import LeaseBackend
from tframex_asgi.ratelimit.memory_backend import MemoryBackend, MemoryStore
from tframex_asgi.ratelimit.protocol import Backend, RateLimitStats, StorageUnavailable, SyncBackend, WindowState
from tframex_asgi.ratelimit.redis_backend import RedisBackend, redis_pool

if TYPE_CHECKING:
    from tframex_asgi.config.ratelimit import RateLimitConfig

__all__ = [
    "Backend",
    "LeaseBackend",
    "MemoryBackend",
    "MemoryStore",
    "RateLimitStats",
    "RedisBackend",
    "StorageUnavailable",
    "SyncBackend",
    "WindowState",
    "open_backend",
    "redis_pool",
]


def open_backend(cfg: RateLimitConfig, *, stats: RateLimitStats | None = None, pool: Any = None) -> Backend:
    """A backend for ``cfg.storage``; ``pool`` reuses a caller's Redis connection pool (the
    caller then closes it; a pool opened here is closed by the backend's ``close``)."""
    scheme, _, rest = cfg.storage.partition("://")
    scheme = scheme.removeprefix("async+")
    if scheme == "memory":
        return MemoryBackend(cfg.strategy, cooldown=cfg.cooldown, stats=stats)
    if scheme not in ("redis", "rediss"):
        raise ConfigError("storage", f"unsupported rate-limit storage {cfg.storage!r}")
    url = f"{scheme}://{rest}"
    close = None
    if pool is None:
        pool = redis_pool(url, cfg)
        close = pool.aclose
    storage = RedisStorage(f"async+{url}", implementation="redispy", connection_pool=pool, key_prefix=cfg.key_prefix)
    backend = RedisBackend(storage, cfg.strategy, timeout=cfg.timeout, cooldown=cfg.cooldown, stats=stats, close=close)
    return LeaseBackend(backend, cfg.lease) if cfg.lease > 0 else backend
