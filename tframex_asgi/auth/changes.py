"""Grant changes seen by every process within a second, without a database read per request.

Authentication and RBAC keep verified principals and role grants in memory (``cache_ttl``
seconds), so a request costs no database read. A change that takes rights away (key revoked,
user disabled, password changed, role granted, revoked, created or deleted) must not wait for
those caches to expire in other processes, ``tframex-asgi`` CLI commands on the same database
included.

Every such change writes one row to the seed's ``events`` table (``event_type =
"identity.changed"``; the row is also a record of when it happened). Each process polls that
signal every :data:`POLL_INTERVAL` seconds: one indexed ``count`` plus one read of the newest
row (``idx_events_type_created``), whatever the request rate. When either differs from what it
saw last, it drops its authentication caches and RBAC grants, so the next request reads the new
state. A change is thus in force everywhere within ``POLL_INTERVAL`` plus one poll's latency
(under 1 s). ``memory://`` storage is process-local: there is nobody to tell, nothing is polled.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tframex_asgi.errors import TFrameXASGIError
from tframex_asgi.storage.memory import MemoryStorage
from tframex_asgi.util import cancel_and_wait, naive_utc

if TYPE_CHECKING:
    from tframex_asgi.clock import Clock
    from tframex_asgi.storage.base import BaseStorage

__all__ = ["CHANGE_EVENT", "POLL_INTERVAL", "ChangeWatcher", "publish_change", "shares_changes"]

logger = logging.getLogger("tframex_asgi.auth")

CHANGE_EVENT = "identity.changed"
# Half the promised bound: a change lands at worst just after a poll, and the next one must
# still finish within the second.
POLL_INTERVAL = 0.5
_FILTER = {"event_type": CHANGE_EVENT}


def shares_changes(storage: BaseStorage) -> bool:
    """Whether other processes can change what ``storage`` holds (not ``memory://``)."""
    return not isinstance(storage, MemoryStorage)


async def publish_change(
    storage: BaseStorage, clock: Clock, action: str, resource_type: str, resource_id: str | None
) -> None:
    """Tell every process sharing ``storage`` that grants changed. Called after the change is
    stored; a failure is logged, not raised (the change itself stands, and other processes
    then see it when their caches expire)."""
    if not shares_changes(storage):
        return
    row = {
        "id": str(uuid.uuid4()),
        "event_type": CHANGE_EVENT,
        "event_source": "tframex_asgi",
        "resource_type": resource_type,
        "resource_id": resource_id,
        "action": action,
        "status": "success",
        "created_at": naive_utc(clock.time()),
    }
    try:
        await storage.write("events", row)
    except (TFrameXASGIError, OSError) as exc:
        logger.warning("could not signal the %s change to other processes: %s", action, type(exc).__name__)


class ChangeWatcher:
    """Polls the change signal and calls ``on_change`` when it moved (see the module docstring)."""

    def __init__(
        self, storage: BaseStorage, on_change: Callable[[], Awaitable[None]], *, interval: float = POLL_INTERVAL
    ) -> None:
        self.storage = storage
        self.on_change = on_change
        self.interval = interval
        self._seen: tuple[int, Any] | None = None
        # A poll failed: changes may have been missed, so the next good poll counts as one.
        self._lost = False
        self._task: asyncio.Task[None] | None = None

    async def _signal(self) -> tuple[int, Any]:
        # The count catches rows written with an older clock; the newest id catches a change
        # that coincides with retention deleting as many old rows.
        count = await self.storage.count("events", _FILTER)
        newest = await self.storage.read("events", _FILTER, limit=1, order_by="-created_at")
        return count, (newest[0].get("id") if newest else None)

    async def poll(self) -> bool:
        """One poll; True when a change was seen (and ``on_change`` called)."""
        try:
            signal = await self._signal()
        except Exception:
            self._lost = self._seen is not None
            raise
        changed = self._lost or (self._seen is not None and signal != self._seen)
        self._seen, self._lost = signal, False
        if changed:
            await self.on_change()
        return changed

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # storage outage: keep polling (caches still expire by TTL)
                logger.debug("change poll failed: %s", type(exc).__name__)

    async def start(self) -> None:
        try:
            await self.poll()
        except Exception as exc:
            logger.warning("change poll failed at startup: %s", type(exc).__name__)
        self._task = asyncio.create_task(self._run(), name="tframex-asgi-change-watcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
