"""Small helpers written once for the whole package: naive-UTC datetimes, UUID checks,
bounded memo tables and stopping a background task. Floor 0: imports nothing of ours."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

__all__ = ["as_naive_utc", "cancel_and_wait", "is_uuid", "memo_put", "naive_utc"]

K = TypeVar("K")
V = TypeVar("V")


def naive_utc(seconds: float | None = None) -> datetime:
    """UTC without a zone, for TIMESTAMP columns (which have none; we always write UTC): the
    moment ``seconds`` after the epoch (a clock's ``time()``), or now."""
    moment = datetime.now(UTC) if seconds is None else datetime.fromtimestamp(seconds, UTC)
    return moment.replace(tzinfo=None)


def as_naive_utc(value: datetime) -> datetime:
    """``value`` in UTC without a zone; a naive ``value`` is taken to be UTC already."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def is_uuid(value: Any) -> bool:
    """A :class:`uuid.UUID`, or text that parses as one. Checked before a query, since PostgreSQL
    refuses a malformed UUID with an error where the other backends just find nothing."""
    if isinstance(value, uuid.UUID):
        return True
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def memo_put(memo: dict[K, V], key: K, value: V, limit: int, *, evict: bool = True) -> V:
    """Remember ``value`` under ``key`` in a memo that never holds more than ``limit`` entries, and
    return it. The memo stays a plain dict so a hit is one dict lookup at the call site; only a
    miss comes here. When full, ``evict`` empties it (the working set refills it at once);
    ``evict=False`` keeps what it holds and does not remember ``value``, so junk keys cannot
    push out the ones that were there first."""
    if len(memo) >= limit:
        if not evict:
            return value
        memo.clear()
    memo[key] = value
    return value


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel a background task and wait until it has finished unwinding (its ``finally`` blocks
    ran), so a component's ``stop()`` returns only once its loop is really gone."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
