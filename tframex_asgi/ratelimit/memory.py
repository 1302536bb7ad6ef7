"""In-process counting for ``memory://``: the three ``limits`` strategies, synchronous, one call per hit.

``limits``' own memory storage is slow per request: a key string built through
``safe_string`` per identifier, an exception-wrapping decorator around every storage call, an
``asyncio.Lock`` per key, and a second call (``get_window_stats``) for the RateLimit headers.
On one event loop nothing else runs between two statements without an ``await``, so a plain
synchronous update is already atomic: exactly-N admission needs no lock. Each hit returns the
window state it produced, so the headers cost no second lookup.

The arithmetic is ``limits`` 5.8's (``aio/strategies.py`` and ``aio/storage/memory.py``), kept
decision for decision so that switching between ``memory://`` and ``redis://`` changes nothing
but where the counts live:

* fixed window: the window starts with the first hit of a key; every hit counts, even a refused
  one; ``remaining = amount - count``; the reset is the key's expiry.
* moving window: one timestamp per unit of cost; a hit is refused when the entry ``amount - cost``
  places back (newest first) is inside the window; the reset is the oldest entry in the
  window plus the window.
* sliding window counter: clock-aligned windows; ``weighted = previous * previous_ttl / expiry
  + current``; a hit is refused when ``floor(weighted) + cost > amount``.

Times are ``time.time()`` like ``limits``' (its reset times are wall-clock epochs).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable
from math import floor, inf

__all__ = ["ENGINES", "FixedWindow", "MemoryEngine", "MovingWindow", "SlidingWindowCounter", "WindowTuple"]

# (allowed, remaining, reset epoch); remaining is already clamped at 0.
WindowTuple = tuple[bool, int, float]
Key = Hashable


class MemoryEngine:
    """Counts for one strategy. ``hit`` consumes and reports; ``stats`` only reports."""

    name = ""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now

    def hit(self, key: Key, amount: int, expiry: int, cost: int = 1) -> WindowTuple:
        raise NotImplementedError

    def stats(self, key: Key, amount: int, expiry: int) -> tuple[int, float]:
        raise NotImplementedError

    def clear(self, key: Key) -> None:
        raise NotImplementedError

    def sweep(self) -> None:
        """Drop keys whose window has passed (they count as empty already: this frees memory)."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class FixedWindow(MemoryEngine):
    name = "fixed-window"

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        super().__init__(now)
        self._data: dict[Key, list[float]] = {}  # key -> [count, expires at]

    def hit(self, key: Key, amount: int, expiry: int, cost: int = 1) -> WindowTuple:
        now = self._now()
        entry = self._data.get(key)
        if entry is None or entry[1] <= now:
            entry = self._data[key] = [0, now]
        count = entry[0] + cost
        entry[0] = count
        if count == cost:  # limits: the window starts with the key's first increment
            entry[1] = now + expiry
        return count <= amount, max(0, amount - int(count)), entry[1]

    def stats(self, key: Key, amount: int, expiry: int) -> tuple[int, float]:
        now = self._now()
        entry = self._data.get(key)
        if entry is None or entry[1] <= now:
            return amount, now
        return max(0, amount - int(entry[0])), entry[1]

    def clear(self, key: Key) -> None:
        self._data.pop(key, None)

    def sweep(self) -> None:
        now = self._now()
        for key in [k for k, (_, expires) in self._data.items() if expires <= now]:
            del self._data[key]

    def __len__(self) -> int:
        return len(self._data)


class MovingWindow(MemoryEngine):
    name = "moving-window"

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        super().__init__(now)
        # key -> (window seconds, hit times oldest first; one entry per unit of cost)
        self._data: dict[Key, tuple[int, deque[float]]] = {}

    def _events(self, key: Key, expiry: int, now: float) -> deque[float]:
        entry = self._data.get(key)
        if entry is None:
            events: deque[float] = deque()
            self._data[key] = (expiry, events)
            return events
        events = entry[1]
        cutoff = now - expiry
        # Entries at exactly the cutoff still count as inside for ``hit`` (limits: atime >= cutoff).
        # The newest entry stays even when expired: limits then reports a reset in the past
        # (read as 0 s), not a fresh window, until the sweep forgets the key.
        while len(events) > 1 and events[0] < cutoff:
            events.popleft()
        return events

    @staticmethod
    def _state(events: deque[float], amount: int, expiry: int, now: float) -> tuple[int, float]:
        if not events:
            return amount, now + expiry
        # limits counts entries strictly after the cutoff; the window starts at the oldest of them
        # (or, with none, at the oldest entry kept).
        cutoff = now - expiry
        skipped = 0
        for t in events:
            if t > cutoff:
                break
            skipped += 1
        count = len(events) - skipped
        start = events[skipped] if skipped < len(events) else events[0]
        return max(0, amount - count), start + expiry

    def hit(self, key: Key, amount: int, expiry: int, cost: int = 1) -> WindowTuple:
        now = self._now()
        events = self._events(key, expiry, now)
        allowed = False
        if cost <= amount:
            place = amount - cost  # newest first, as limits keeps them
            if len(events) <= place or events[-1 - place] < now - expiry:
                events.extend([now] * cost)
                allowed = True
        remaining, reset = self._state(events, amount, expiry, now)
        return allowed, remaining, reset

    def stats(self, key: Key, amount: int, expiry: int) -> tuple[int, float]:
        now = self._now()
        entry = self._data.get(key)
        if entry is None or not entry[1]:
            return amount, now + expiry
        return self._state(self._events(key, expiry, now), amount, expiry, now)

    def clear(self, key: Key) -> None:
        self._data.pop(key, None)

    def sweep(self) -> None:
        now = self._now()
        for key in [k for k, (exp, ev) in self._data.items() if not ev or ev[-1] < now - exp]:
            del self._data[key]

    def __len__(self) -> int:
        return len(self._data)


class SlidingWindowCounter(MemoryEngine):
    name = "sliding-window-counter"

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        super().__init__(now)
        # key -> [window index, current count, previous count, window seconds]
        self._data: dict[Key, list[int]] = {}

    def _counts(self, key: Key, expiry: int, now: float) -> list[int]:
        index = int(now / expiry)
        entry = self._data.get(key)
        if entry is None:
            entry = self._data[key] = [index, 0, 0, expiry]
        elif entry[0] != index:
            # The previous window's count survives exactly one window (limits: a 2 x expiry TTL).
            entry[2] = entry[1] if entry[0] == index - 1 else 0
            entry[1] = 0
            entry[0] = index
        return entry

    @staticmethod
    def _state(entry: list[int], amount: int, expiry: int, now: float) -> tuple[int, float, float]:
        """(remaining, reset epoch, weighted count)."""
        current, previous = entry[1], entry[2]
        previous_ttl = 0.0 if previous == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
        weighted = previous * previous_ttl / expiry + current
        remaining = max(0, amount - floor(weighted))
        if not (previous or current):
            return remaining, now, weighted
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        previous_reset_in = previous_ttl % (expiry / previous) if previous else inf
        current_reset_in = current_ttl % expiry if current else inf
        return remaining, now + min(previous_reset_in, current_reset_in), weighted

    def hit(self, key: Key, amount: int, expiry: int, cost: int = 1) -> WindowTuple:
        now = self._now()
        entry = self._counts(key, expiry, now)
        if cost > amount:
            remaining, reset, _ = self._state(entry, amount, expiry, now)
            return False, remaining, reset
        _, _, weighted = self._state(entry, amount, expiry, now)
        allowed = floor(weighted) + cost <= amount
        if allowed:
            entry[1] += cost
        remaining, reset, _ = self._state(entry, amount, expiry, now)
        return allowed, remaining, reset

    def stats(self, key: Key, amount: int, expiry: int) -> tuple[int, float]:
        now = self._now()
        remaining, reset, _ = self._state(self._counts(key, expiry, now), amount, expiry, now)
        return remaining, reset

    def clear(self, key: Key) -> None:
        self._data.pop(key, None)

    def sweep(self) -> None:
        now = self._now()
        # Untouched since before the previous window: both counts would read as zero.
        for key in [k for k, e in self._data.items() if e[0] < int(now / e[3]) - 1]:
            del self._data[key]

    def __len__(self) -> int:
        return len(self._data)


ENGINES: dict[str, type[MemoryEngine]] = {
    "fixed-window": FixedWindow,
    "moving-window": MovingWindow,
    "sliding-window-counter": SlidingWindowCounter,
}
