"""Brute-force protection: a per-IP budget of failed authentications (``auth_failures``).

The authentication layer finds an :class:`AuthFailureGuard` in ``services.extras["auth_failures"]``
and asks ``blocked(ip)`` before checking credentials, ``record_failure(ip)`` after a failure.
Successes do not reset the count: an attacker holding one valid credential could otherwise
interleave it to keep guessing others.
"""

from __future__ import annotations

from tframex_asgi.ratelimit.backend import Backend, StorageUnavailable
from tframex_asgi.ratelimit.policy import parse_policies

__all__ = ["AuthFailureGuard"]


class AuthFailureGuard:
    """``await blocked(ip)`` -> seconds to wait or ``None``; ``await record_failure(ip)``.

    Storage trouble follows the rate limiter's policy: with ``fail_open`` nobody is blocked,
    otherwise everybody is (for ``cooldown`` seconds), and neither call ever raises.
    """

    def __init__(self, backend: Backend, limit: str = "10/minute", *, fail_open: bool = True) -> None:
        self.backend = backend
        self.policies = parse_policies("auth_failures", limit)
        self.fail_open = fail_open
        self.stats = backend.stats

    async def blocked(self, ip: str | None) -> float | None:
        if not ip:
            return None
        try:
            wait = 0.0
            for policy in self.policies:
                window = await self.backend.window(policy.item, "af", ip)
                if window.remaining <= 0:
                    wait = max(wait, window.reset, 1.0)
        except StorageUnavailable:
            if self.fail_open:
                return None
            wait = max(self.backend.cooldown, 1.0)
        if wait:
            self.stats.auth_failures_blocked_total += 1
            return wait
        return None

    async def record_failure(self, ip: str | None) -> None:
        if not ip:
            return
        self.stats.auth_failures_recorded_total += 1
        try:
            for policy in self.policies:
                # A refused hit means the budget is already spent, which is all we need to know.
                await self.backend.hit(policy.item, "af", ip)
        except StorageUnavailable:
            pass  # counted by the backend; losing one failure is better than failing the request
