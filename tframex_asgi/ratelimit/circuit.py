"""A circuit breaker for a rate-limit storage that can fail: one failure opens it for ``cooldown``.

A dead or blackholed Redis then costs one timeout per cooldown, not one per request: while the
circuit is open, calls fail at once without touching the storage. The first call after the
cooldown tries the storage again; its success closes the circuit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from tframex_asgi.ratelimit.protocol import RateLimitStats, StorageUnavailable

__all__ = ["Circuit"]

logger = logging.getLogger("tframex_asgi.ratelimit")


class Circuit:
    """``check()`` before a storage call, then ``failed(what, exc)`` or ``answered()``.

    Three calls rather than one wrapper around the storage call: the wrapper would add a
    coroutine frame to every hit, and the closed circuit (the common case) costs one attribute
    test this way.
    """

    __slots__ = ("cooldown", "monotonic", "open_until", "stats")

    def __init__(self, cooldown: float, stats: RateLimitStats, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.cooldown = cooldown
        self.stats = stats
        self.monotonic = monotonic
        # Process-wide health, not per-request state: non-zero from a failure to the next success.
        self.open_until = 0.0

    def check(self) -> None:
        """Raise :class:`StorageUnavailable` while the cooldown of the last failure runs."""
        if self.open_until and self.monotonic() < self.open_until:
            self.stats.unavailable_total += 1
            raise StorageUnavailable("rate-limit storage unavailable (circuit open)")

    def failed(self, what: str, exc: BaseException) -> StorageUnavailable:
        """Open (or keep open) the circuit; the error to raise ``from exc``."""
        self.stats.unavailable_total += 1
        first = not self.open_until
        self.open_until = self.monotonic() + self.cooldown
        if first:
            # The exception text names host:port only (never the URL's password).
            logger.warning("rate-limit storage failed on %s: %s: %s", what, type(exc).__name__, exc)
        return StorageUnavailable("rate-limit storage unavailable")

    def answered(self) -> None:
        """A call succeeded: close the circuit if it was open."""
        if self.open_until:
            self.open_until = 0.0
            logger.warning("rate-limit storage is answering again")
