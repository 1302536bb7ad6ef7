"""What every rate-limit backend offers, and the values it answers with.

:class:`Backend` is what the middleware and the brute-force guard call. Its two implementations
are siblings: :class:`~tframex_asgi.ratelimit.memory_backend.MemoryBackend` (``memory://``, counts
in this process, nothing can fail) and :class:`~tframex_asgi.ratelimit.redis_backend.RedisBackend`
(``redis://``, shared by every worker, bounded in time and behind a circuit breaker). What to do
when the storage is unavailable (fail open or closed) is the caller's policy: a backend only
raises :class:`StorageUnavailable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from limits import RateLimitItem

from tframex_asgi.errors import ServiceUnavailableError

__all__ = ["Backend", "RateLimitStats", "StorageUnavailable", "SyncBackend", "WindowState"]


class StorageUnavailable(ServiceUnavailableError):
    """The rate-limit storage failed or did not answer within the configured timeout."""

    code = "ratelimit_unavailable"
    # Seconds a client should wait (the circuit's cooldown); set by whoever answers the 503.
    retry_after: float = 1.0


@dataclass
class RateLimitStats:
    """Process-wide counters for the metrics package.

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


@runtime_checkable
class Backend(Protocol):
    """Counting for the rate limiter and the brute-force guard.

    ``key`` parts identify the counted client (``"c", "ip:1.2.3.4"``); ``strategy`` ``None`` means
    the backend's configured one. Every call may raise :class:`StorageUnavailable`.
    """

    stats: RateLimitStats
    strategy: str
    # Seconds the storage is left alone after a failure (what a 503's Retry-After suggests).
    cooldown: float

    @property
    def process_local(self) -> bool:
        """True when only this process counts (so it knows every key that has a count)."""
        ...

    @property
    def unavailable(self) -> bool:
        """True from a failed storage call until the next call that succeeds (no I/O)."""
        ...

    async def hit(self, item: RateLimitItem, *key: str, cost: int = 1, strategy: str | None = None) -> bool:
        """Consume ``cost`` if the limit allows it, atomically across processes."""
        ...

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
        the window only when the hit is refused (``None`` otherwise)."""
        ...

    async def window(self, item: RateLimitItem, *key: str, strategy: str | None = None) -> WindowState:
        """The window as it stands, consuming nothing."""
        ...

    async def clear(self, item: RateLimitItem, *key: str, strategy: str | None = None) -> None: ...

    async def ping(self) -> bool:
        """Whether the storage answers (readiness); never raises."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class SyncBackend(Backend, Protocol):
    """A backend that can count without awaiting (memory, a lease): the middleware's common path
    then builds no coroutine per limit."""

    def hit_window_sync(
        self,
        item: RateLimitItem,
        key: tuple[str, ...],
        *,
        cost: int = 1,
        strategy: str | None = None,
        state: bool = True,
    ) -> tuple[bool, WindowState | None] | None:
        """:meth:`Backend.hit_window`, synchronously; ``None`` (nothing consumed) when the answer
        needs I/O, and the caller then awaits :meth:`Backend.hit_window` (a spent lease)."""
        ...
