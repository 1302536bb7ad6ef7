"""Many in-flight storage calls bounded by one timeout each, under a single timer.

``asyncio.timeout`` per call creates a ``Timeout`` object, pushes a timer on the loop's heap and
cancels it again. With one timeout for all calls of a backend, start order is deadline order, so
:class:`Deadlines` keeps the in-flight calls in a dict (insertion order) under one timer armed at
the earliest deadline. A call that ends just leaves the dict; a call still running at its deadline
has its task cancelled, which :meth:`Deadlines.run` turns into ``TimeoutError`` exactly as
``asyncio.timeout`` does (``uncancel`` against the count at entry, so an outside cancellation
still propagates). ``benchmarks/bench_ratelimit.py --deadlines`` measures what this saves next to
a Redis round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["Deadlines"]

T = TypeVar("T")


class _Watch:
    """One in-flight call: its task, deadline and the task's cancel count at entry."""

    __slots__ = ("cancelling", "deadline", "fired", "task")

    def __init__(self, task: asyncio.Task[Any], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.cancelling = task.cancelling()
        self.fired = False


class Deadlines:
    """``await deadlines.run(factory, seconds)``: ``await factory()`` or ``TimeoutError``.

    Every call of one instance must use the same ``seconds`` (deadline order is start order).
    """

    def __init__(self) -> None:
        self._watches: dict[_Watch, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, factory: Callable[[], Awaitable[T]], seconds: float) -> T:
        """``await factory()``, raising TimeoutError once ``seconds`` have passed."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - not inside a task: fall back to the stdlib
            async with asyncio.timeout(seconds):
                return await factory()
        if loop is not self._loop:  # first use, or a new event loop (tests): forget the old one
            self._loop, self._timer = loop, None
            self._watches.clear()
        watch = _Watch(task, loop.time() + seconds)
        self._watches[watch] = None
        if self._timer is None:
            self._timer = loop.call_at(watch.deadline, self._expire)
        try:
            return await factory()
        except asyncio.CancelledError as exc:
            if watch.fired:
                # Ours only if no one else cancelled the task meanwhile (as asyncio.timeout).
                watch.fired = False
                if task.uncancel() <= watch.cancelling:
                    raise TimeoutError from exc
            raise
        finally:
            self._watches.pop(watch, None)
            if watch.fired:  # fired but the call ended anyway: take our cancel request back
                task.uncancel()

    def _expire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        watches = self._watches
        while watches:
            watch = next(iter(watches))
            if watch.deadline > now:
                self._timer = loop.call_at(watch.deadline, self._expire)
                return
            del watches[watch]
            if not watch.task.done():
                watch.fired = True
                watch.task.cancel()


async def stdlib_timeout(factory: Callable[[], Awaitable[T]], seconds: float) -> T:
    """The same contract as :meth:`Deadlines.run` with ``asyncio.timeout`` (one timer per call)."""
    async with asyncio.timeout(seconds):
        return await factory()
