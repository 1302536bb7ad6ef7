"""Rate limiting on the ``limits`` library: per API key, user, IP, role tier, route and token budget.

See ``docs/rate-limiting.md``. Storage is ``memory://`` (one process) or ``redis://`` (redis-py 8,
one blocking connection pool per process).
"""

from __future__ import annotations

from tframex_asgi.ratelimit.backend import Backend, RateLimitStats, StorageUnavailable, WindowState, open_backend
from tframex_asgi.ratelimit.bruteforce import AuthFailureGuard
from tframex_asgi.ratelimit.middleware import RateLimitMiddleware
from tframex_asgi.ratelimit.policy import Policy, Rules, client_identity, parse_policies

__all__ = [
    "AuthFailureGuard",
    "Backend",
    "Policy",
    "RateLimitMiddleware",
    "RateLimitStats",
    "Rules",
    "StorageUnavailable",
    "WindowState",
    "client_identity",
    "open_backend",
    "parse_policies",
]
