"""Brute-force protection: a per-IP budget of failed authentications (``auth_failures``).

The authentication layer finds an :class:`AuthFailureGuard` in ``services.auth_failures``
and asks ``blocked(ip)`` before checking credentials, ``record_failure(ip)`` after a failure.
Successes do not reset the count: an attacker holding one valid credential could otherwise
interleave it to keep guessing others.

What a request costs, and what is guaranteed:

* ``memory://``: failures are counted in this process only, so the guard knows exactly which
  addresses have any: ``blocked(ip)`` for an address without a recorded failure (within twice
  the longest window, the sliding-window counter's reach) answers ``None`` without a lookup.
  Same answers as a lookup, for every caller.
* ``redis://``: other workers record failures too, so ``blocked(ip)`` always reads the storage.
  The authentication layer calls it before any credential check that is not an auth-cache hit,
  so a blocked address is refused before any key lookup, password (argon2) or token check,
  whichever worker counted its failures.
* :meth:`AuthFailureGuard.suspect` (sync, no I/O) is what the layer asks for a credential it
  serves from its cache (verified by this process within the cache TTL: presenting it tests no
  guess). True when this process recorded a failure for the address recently, or when the
  storage circuit is open and the policy fails closed; then ``blocked(ip)`` is asked as before.
  With ``memory://`` this keeps the old answer exactly (a blocked address is refused even with a
  cached credential); with Redis, an address blocked only by failures that other workers saw can
  keep using a credential this worker already verified, until the cache entry expires.
* Storage down and ``fail_open: false``: ``blocked(ip)`` raises :class:`StorageUnavailable`
  (``retry_after`` set), so the authentication layer answers the same 503
  ``ratelimit_unavailable`` as the rate limiter. An outage is not a verdict on the caller: answering
  429 ``too_many_auth_failures`` would tell a client with a valid key that it is blocked. The
  backend's circuit retries the storage after ``cooldown``, so service returns within a cooldown
  of Redis answering again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tframex_asgi.ratelimit.policy import parse_policies
from tframex_asgi.ratelimit.protocol import Backend, StorageUnavailable

__all__ = ["AuthFailureGuard"]

_PURGE_AT = 4096  # markers kept before expired ones are dropped (the bound doubles while all are live)


class AuthFailureGuard:
    """``await blocked(ip)`` -> seconds to wait or ``None``; ``await record_failure(ip)``;
    ``suspect(ip)`` -> whether a cached credential from ``ip`` must still be checked.

    Storage trouble follows the rate limiter's policy: with ``fail_open`` nobody is blocked,
    otherwise ``blocked`` raises :class:`StorageUnavailable` (the caller answers 503);
    ``record_failure`` never raises.
    """

    def __init__(
        self,
        backend: Backend,
        limit: str = "10/minute",
        *,
        fail_open: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.policies = parse_policies("auth_failures", limit)
        self.fail_open = fail_open
        self.stats = backend.stats
        # When only this process counts failures, no marker means no failures.
        self.local_exact = backend.process_local
        # ip -> monotonic time after which no failure recorded here can still count. A sliding
        # window counter still weighs the previous window, hence twice the longest window.
        self._marks: dict[str, float] = {}
        self._horizon = 2.0 * max(p.window for p in self.policies) + 1.0
        self._purge_at = _PURGE_AT
        self._monotonic = monotonic

    def _marked(self, ip: str) -> bool:
        until = self._marks.get(ip)
        if until is None:
            return False
        if until <= self._monotonic():
            del self._marks[ip]
            return False
        return True

    def suspect(self, ip: str | None) -> bool:
        """True when ``blocked(ip)`` could answer a wait for a request whose credential is
        already verified in an auth cache: a failure from ``ip`` recorded here, or a fail-closed
        storage outage. No I/O."""
        if not ip:
            return False
        if not self.fail_open and self.backend.unavailable:
            return True
        return bool(self._marks) and self._marked(ip)

    async def blocked(self, ip: str | None) -> float | None:
        if not ip:
            return None
        if self.local_exact and not (self._marks and self._marked(ip)):
            return None
        try:
            wait = 0.0
            for policy in self.policies:
                window = await self.backend.window(policy.item, "af", ip)
                if window.remaining <= 0:
                    wait = max(wait, window.reset, 1.0)
        except StorageUnavailable as exc:
            if self.fail_open:
                return None
            exc.retry_after = max(self.backend.cooldown, 1.0)
            raise
        if wait:
            self.stats.auth_failures_blocked_total += 1
            return wait
        return None

    async def record_failure(self, ip: str | None) -> None:
        if not ip:
            return
        self.stats.auth_failures_recorded_total += 1
        now = self._monotonic()
        if len(self._marks) >= self._purge_at:
            # Only expired markers go (exactness), and the next purge waits for the set to double,
            # so a spray of addresses costs amortised O(1) per failure.
            self._marks = {k: v for k, v in self._marks.items() if v > now}
            self._purge_at = max(_PURGE_AT, 2 * len(self._marks))
        self._marks[ip] = now + self._horizon
        try:
            for policy in self.policies:
                # A refused hit means the budget is already spent, which is all we need to know.
                await self.backend.hit(policy.item, "af", ip)
        except StorageUnavailable:
            pass  # counted by the backend; losing one failure is better than failing the request
