"""Writes off the request path: a bounded in-memory queue, batched writes, and a spill file.

Rows are written in submit order (a parent submitted before its child reaches the database
first). When the database is down, or the queue is full, the oldest unwritten rows and everything
after them go to an append-only spill file; from then on new rows are appended behind them until
the writer has replayed the file, so order is kept. Every write uses ``skip_existing`` (``ON
CONFLICT (id) DO NOTHING``): a batch whose COMMIT succeeded but whose acknowledgement was lost is
spilled too, and replaying it writes nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from tframex_asgi.config.persistence import WriteQueueConfig
from tframex_asgi.storage.batch import BatchWriting, Item
from tframex_asgi.storage.schema import DEPENDENCY_ORDER, NOW, TABLES
from tframex_asgi.storage.spill import SpillFile, encode_line
from tframex_asgi.util import naive_utc

if TYPE_CHECKING:
    from tframex_asgi.services import Services
    from tframex_asgi.storage.base import BaseStorage

__all__ = ["WriteQueue", "get_writer"]

logger = logging.getLogger("tframex_asgi.storage.queue")
_NOW_COLUMNS = {t.name: tuple(c.name for c in t.columns if c.default is NOW) for t in TABLES.values()}


def _grouped(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda item: DEPENDENCY_ORDER[item[0]])  # stable: a table's rows keep their order


class WriteQueue(BatchWriting):
    def __init__(
        self,
        storage: BaseStorage,
        config: WriteQueueConfig | None = None,
        *,
        spill_path: str | None = None,
        retry_delay: float = 0.05,
        max_retry_delay: float = 0.25,
    ) -> None:
        self.storage = storage
        self.config = config or WriteQueueConfig()
        self.spill = SpillFile(spill_path or self.config.spill_path)
        # While the database is down the writer retries at most max_retry_delay apart: one
        # failed connection attempt costs next to nothing, and every second of backoff is a
        # second the database may already be back while rows still go to the spill file.
        self.retry_delay, self.max_retry_delay = retry_delay, max_retry_delay
        self._queue: deque[Item] = deque()
        self._inflight: list[Item] = []
        self._inflight_spilled = False
        self._spilling = False  # the spill file holds older rows: new rows go behind them
        self._backlog = 0  # rows in the spill file not yet replayed
        self._submitted = 0
        self._durable = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.written_total = 0
        self.spilled_total = 0
        self.dropped_total = 0  # lost rows (the spill file could not be written): must stay 0
        self.rejected_total = 0  # rows the schema refuses (a caller bug), logged

    @property
    def depth(self) -> int:
        """Rows submitted but not yet in the database (memory and spill file)."""
        return len(self._queue) + len(self._inflight) + self._backlog

    # -- producer side (sync, never blocks, never raises) -------------------------------
    # Producers may pass ``trusted=True`` (see submit): callers check for this attribute.
    accepts_trusted = True

    def submit(self, table: str, row: dict[str, Any], *, trusted: bool = False) -> None:
        """Queue ``row`` for ``table``.

        ``trusted=True`` is for producers that build rows from the schema themselves (the audit
        logger, the execution recorder): the row has only columns of ``table`` and the queue takes
        the dict over (no copy: the caller must not change it afterwards). Its values are still
        checked when written (cheaply when already canonical); a trusted batch the database
        refuses is retried row by row on the validated path, and rows replayed from the spill
        file are never trusted.
        """
        try:
            tbl = TABLES.get(table)
            if trusted and tbl is not None and type(row) is dict:
                data = row
            else:
                trusted = False
                if tbl is None or not (type(row) is dict and tbl.by_name.keys() >= row.keys()):
                    unknown = [k for k in row if tbl is None or k not in tbl.by_name]
                    if tbl is None or unknown:
                        self.rejected_total += 1
                        logger.error("write queue: rejected a row for %r (unknown table or columns %s)", table, unknown)
                        return
                data = dict(row)
            if tbl.has_id and data.get("id") is None:
                data["id"] = str(uuid.uuid4())
            now_columns = _NOW_COLUMNS[table]
            if now_columns:
                now = None
                for name in now_columns:
                    if name not in data:
                        now = now or naive_utc()  # the time of the event, not of the (later) write
                        data[name] = now
            self._submitted += 1
            if self._spilling:
                self._to_spill([(table, data, trusted)])
            elif len(self._queue) >= self.config.max_size:
                self._enter_spill([(table, data, trusted)])
            else:
                self._queue.append((table, data, trusted))
                if len(self._queue) >= self.config.batch_size:
                    self._wake.set()
        except Exception:  # the caller is on the request path: never let it fail
            logger.exception("write queue: submit failed")
            self.dropped_total += 1

    def _to_spill(self, items: list[Item]) -> None:
        lines = []
        for table, data, _ in items:  # the spill file keeps no trust: replayed rows are validated
            try:
                lines.append(encode_line(table, data))
            except (TypeError, ValueError) as exc:
                self.rejected_total += 1
                logger.error("write queue: a %s row cannot be serialised: %s", table, exc)
        try:
            self.spill.append(lines)
            self.spilled_total += len(lines)
            self._backlog += len(lines)
        except OSError:
            self.dropped_total += len(lines)
            logger.critical(
                "write queue: LOST %d rows: spill file %s failed", len(lines), self.spill.path, exc_info=True
            )
        self._advance(len(items))

    def _enter_spill(self, extra: list[Item]) -> None:
        items = [] if self._inflight_spilled else list(self._inflight)
        self._inflight_spilled = True
        items.extend(self._queue)
        self._queue.clear()
        items.extend(extra)
        self._spilling = True
        self._to_spill(items)
        self._wake.set()

    def _advance(self, n: int) -> None:
        self._durable += n
        while self._waiters and self._waiters[0][0] <= self._durable:
            _, fut = self._waiters.pop(0)
            if not fut.done():
                fut.set_result(None)

    # -- consumer side -------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        self._stopping = False
        if any(p.exists() and p.stat().st_size > 0 for p in self.spill.candidates()):
            # Rows left by a previous run (this worker's or a crashed sibling's): replay them
            # before anything new.
            self.spill.open()
            self.spill.adopt_orphans()
            self._backlog = self.spill.path.read_bytes().count(b"\n")
            self._spilling = self._backlog > 0
        self._task = asyncio.create_task(self._run(), name="tframex-write-queue")

    async def flush(self) -> None:
        """Wait until every row submitted so far is in the database or the spill file."""
        if self._task is None:
            await self.start()
        if self._durable < self._submitted:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append((self._submitted, fut))
            self._wake.set()
            await fut
        if self.spilled_total:
            self.spill.sync()

    async def drain(self, poll: float = 0.01) -> None:
        """Wait until every submitted row is in the database (the spill file replayed)."""
        await self.flush()
        while self.depth or self._spilling:
            self._wake.set()
            await asyncio.sleep(poll)

    async def stop(self) -> None:
        """Flush, write what the database takes, leave the rest in the spill file."""
        if self._task is None:
            return
        await self.flush()
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        await task
        self.spill.sync()
        empty = not self.spill.pending
        self.spill.close()
        if empty and self.spill.path.exists() and self.spill.path.stat().st_size == 0:
            self.spill.path.unlink(missing_ok=True)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _run(self) -> None:
        while True:
            try:
                await self._loop()
                return
            except Exception:
                # A bug or an unreadable spill file must not silently stop all writes.
                logger.exception("write queue: writer failed; restarting it")
                await self._sleep(self.max_retry_delay)

    async def _loop(self) -> None:
        delay = self.retry_delay
        lingered = False
        while True:
            if self._spilling:
                if await self._replay_once():
                    if delay > self.retry_delay:
                        logger.warning("write queue: database answering again; replaying %d rows", self._backlog)
                    delay = self.retry_delay
                elif self._stopping:
                    return  # the database is still down: the spill file keeps the rows
                else:
                    await self._sleep(delay)
                    delay = min(delay * 2, self.max_retry_delay)
            elif (
                self._queue
                and len(self._queue) < self.config.batch_size
                and not (lingered or self._waiters or self._stopping)
            ):
                # Linger up to flush_interval for a fuller batch: one big batch (COPY) costs far
                # less than many small ones. A full batch, flush() or stop() ends the wait.
                lingered = True
                await self._sleep(self.config.flush_interval)
            elif self._queue:
                lingered = False
                batch = _grouped([self._queue.popleft() for _ in range(min(self.config.batch_size, len(self._queue)))])
                self._inflight, self._inflight_spilled = list(batch), False
                if not await self._write(batch, self._written_inflight) and not self._inflight_spilled:
                    self._enter_spill([])
                self._inflight, self._inflight_spilled = [], False
            elif self._stopping:
                return
            else:
                await self._sleep(self.config.flush_interval)

    def _written_inflight(self, n: int) -> None:
        if not self._inflight_spilled:
            del self._inflight[:n]
            self._advance(n)

    async def _replay_once(self) -> bool:
        rows, offset = self.spill.read_batch(self.config.batch_size)
        if rows and not await self._write(_grouped([(t, r, False) for t, r in rows]), lambda n: None):
            return False
        self.spill.read_offset = offset
        self._backlog = max(0, self._backlog - len(rows))
        if not rows and self.spill.size() <= offset:
            # Nothing awaits between this check and the switch: no row can slip in between.
            self.spill.reset()
            self._spilling, self._backlog = False, 0
        return True


def get_writer(services: Services) -> WriteQueue:
    """The stack's write queue: ``services.writer``."""
    return services.writer
