"""A small bounded TTL cache on the injected monotonic clock (verified keys, passwords, tokens).

Entries are keyed by a digest of the credential, never by the credential itself, so a memory
dump does not hand out working secrets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["TTLCache"]

V = TypeVar("V")


class TTLCache(Generic[V]):
    """``get``/``put`` with a per-entry deadline; the oldest entries go first when full."""

    __slots__ = ("_data", "_max", "_now", "ttl")

    def __init__(self, ttl: float, now: Callable[[], float], max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self._now = now
        self._max = max_entries
        self._data: dict[bytes, tuple[float, V]] = {}

    def get(self, key: bytes) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= self._now():
            self._data.pop(key, None)
            return None
        return entry[1]

    def put(self, key: bytes, value: V, ttl: float | None = None) -> None:
        ttl = self.ttl if ttl is None else min(ttl, self.ttl)
        if ttl <= 0:
            return
        if len(self._data) >= self._max:
            self._evict()
        self._data[key] = (self._now() + ttl, value)

    def pop(self, key: bytes) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def _evict(self) -> None:
        now = self._now()
        expired = [k for k, (deadline, _) in self._data.items() if deadline <= now]
        for k in expired:
            del self._data[k]
        # Still full: drop the oldest tenth (dicts keep insertion order) rather than one at a time.
        if len(self._data) >= self._max:
            for k in list(self._data)[: max(1, self._max // 10)]:
                del self._data[k]
