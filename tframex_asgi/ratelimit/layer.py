"""Stack builder for the rate-limit layer, and the brute-force guard the authentication layer uses.

Puts into ``services.extras``:

* ``"ratelimit"``: the :class:`~tframex_asgi.ratelimit.backend.Backend` (``await .ping()`` for readiness);
* ``"ratelimit_stats"``: :class:`~tframex_asgi.ratelimit.backend.RateLimitStats` for the metrics package;
* ``"auth_failures"``: the :class:`~tframex_asgi.ratelimit.bruteforce.AuthFailureGuard`;
* ``"redis_pools"``: ``{url: BlockingConnectionPool}``, one per Redis URL and process, reusable.
"""

from __future__ import annotations

from typing import Any

from tframex_asgi.ratelimit.backend import RateLimitStats, open_backend, redis_pool
from tframex_asgi.ratelimit.bruteforce import AuthFailureGuard
from tframex_asgi.ratelimit.middleware import RateLimitMiddleware
from tframex_asgi.services import Services
from tframex_asgi.types import ASGIApp

__all__ = ["build_layer"]


def build_layer(app: ASGIApp, services: Services) -> ASGIApp | None:
    cfg = services.config.security.rate_limiting
    if not cfg.enabled:
        return None
    stats: RateLimitStats = services.extras.setdefault("ratelimit_stats", RateLimitStats())
    pool: Any = None
    scheme = cfg.storage.split("://", 1)[0].removeprefix("async+")
    if scheme in ("redis", "rediss"):
        url = scheme + "://" + cfg.storage.split("://", 1)[1]
        pools: dict[str, Any] = services.extras.setdefault("redis_pools", {})
        pool = pools.get(url)
        if pool is None:
            pool = pools[url] = redis_pool(url, cfg)
            services.on_shutdown(pool.aclose)
    backend = open_backend(cfg, stats=stats, pool=pool)
    services.extras["ratelimit"] = backend
    services.extras["auth_failures"] = AuthFailureGuard(backend, cfg.auth_failures, fail_open=cfg.fail_open)
    return RateLimitMiddleware(app, cfg, backend=backend)
