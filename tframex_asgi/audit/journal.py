"""The durable audit journal (``security.audit.durability: durable``): no answer without its row on disk.

The write queue keeps rows in memory for up to ``flush_interval`` before the database has them, so a
SIGKILL (or a power cut) loses the rows of the last requests though their clients were answered.
In durable mode the logger's sink is this journal: every row is appended to a local append-only
file (JSON lines, the spill file's format) *and* handed to the write queue as before; the audit
layer holds each response's last message until :meth:`AuditJournal.synced` says the row is
fsynced. fsync is batched (group commit): one writer task takes every line appended so far,
writes and fsyncs them in a thread, and wakes all the requests they belong to, so N concurrent
requests cost about one fsync, not N.

The journal is not a second database: once the write queue confirms (``flush``) that the rows of
a journal file are in the database or in its own spill file, the file is deleted (a checkpoint,
every ``checkpoint_seconds`` or ``checkpoint_bytes``). At start, the files no live process holds
(``flock``, as the spill file does) are replayed through the write queue, which writes with
``ON CONFLICT (id) DO NOTHING``: rows that had reached the database are not written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

from tframex_asgi.errors import StorageError
from tframex_asgi.storage.spill import encode_line

__all__ = ["AuditJournal", "get_journal"]

logger = logging.getLogger("tframex_asgi.audit.journal")
_PREFIX = "journal-"
_SUFFIX = ".jsonl"


class AuditJournal:
    """An :class:`~tframex_asgi.audit.logger.AuditSink` in front of the write queue."""

    def __init__(
        self,
        writer: Any,
        directory: str | os.PathLike[str],
        *,
        checkpoint_seconds: float = 5.0,
        checkpoint_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.writer = writer
        self.directory = Path(directory)
        self.checkpoint_seconds, self.checkpoint_bytes = checkpoint_seconds, checkpoint_bytes
        self.accepts_trusted = bool(getattr(writer, "accepts_trusted", False))
        # Lines appended but not yet written; the lock makes (lines, count) one unit, since rows
        # may be built from other threads (log_change from sync admin code).
        self._lock = threading.Lock()
        self._lines: list[bytes] = []
        self._appended = 0  # lines ever appended
        self._synced = 0  # lines ever fsynced
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._file: io.FileIO | None = None
        self._path: Path | None = None
        self._opened_at = 0.0
        self._confirming: set[asyncio.Task[None]] = set()  # retired files waiting for the writer
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.replayed_total = 0
        self.fsyncs_total = 0

    # -- producer side (sync, never blocks, never raises) --------------------------------------
    def submit(self, table: str, row: dict[str, Any], *, trusted: bool = False) -> None:
        try:
            line = encode_line(table, row)
        except (TypeError, ValueError):
            line = None  # the write queue rejects and logs it too: it can be stored nowhere
        if line is not None:
            with self._lock:
                self._lines.append(line)
                self._appended += 1
        if trusted and self.accepts_trusted:
            self.writer.submit(table, row, trusted=True)
        else:
            self.writer.submit(table, row)

    async def synced(self) -> None:
        """Wait until every row submitted so far is fsynced; StorageError when the write failed."""
        target = self._appended
        if self._synced >= target:
            return
        if self._task is None:
            await self.start()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, fut))
        assert self._wake is not None
        self._wake.set()
        await fut

    async def flush(self) -> None:
        """Everything submitted so far fsynced here, then durable in the write queue."""
        await self.synced()
        await self.writer.flush()

    # -- files ---------------------------------------------------------------------------------
    def _open_new(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}{_SUFFIX}"
        # Unbuffered: a failed write must not stay in a buffer and be written again by the next one.
        handle = open(path, "ab", buffering=0)  # noqa: SIM115 - held for the file's lifetime
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The new name itself must survive a power cut, not only the lines written to it.
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        old, self._file, self._path, self._opened_at = self._file, handle, path, time.monotonic()
        if old is not None:
            old.close()  # its lock goes with it: it is retired, replayable by whoever starts next

    def _write(self, lines: list[bytes]) -> None:
        """Runs in a worker thread: one write and one fsync for every line waiting."""
        if self._file is None:
            self._open_new()
        assert self._file is not None
        fd = self._file.fileno()
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(b"".join(lines))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            # Cut a partial batch off, so the retry does not append to half a line.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise

    def _orphans(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob(f"{_PREFIX}*{_SUFFIX}") if p != self._path)

    @staticmethod
    def _claim(path: Path) -> tuple[IO[bytes], list[tuple[str, dict[str, Any]]]] | None:
        """Lock a journal file no live process holds and read its rows (None: not ours to replay)."""
        try:
            handle = open(path, "rb")  # noqa: SIM115 - the caller closes it, after the replay
        except FileNotFoundError:
            return None  # another worker replayed it meanwhile
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return None  # a live worker's journal
        records = []
        for line in handle:
            if not line.endswith(b"\n"):
                break  # cut by the kill before its fsync returned: never acknowledged
            try:
                record = json.loads(line)
                records.append((str(record["t"]), dict(record["r"])))
            except (ValueError, KeyError, TypeError):
                logger.error("audit journal: skipping a corrupt line in %s", path)
        return handle, records

    async def _replay(self) -> None:
        """Rows of the files no live process holds, through the write queue; then the files go."""
        for path in await asyncio.to_thread(self._orphans):
            claimed = await asyncio.to_thread(self._claim, path)
            if claimed is None:
                continue
            handle, records = claimed
            try:
                for table, row in records:
                    self.writer.submit(table, row)  # untrusted: validated again, like the spill file
                await self.writer.flush()  # in the database or the spill file before the file goes
                await asyncio.to_thread(path.unlink, missing_ok=True)
            finally:
                handle.close()
            if records:
                self.replayed_total += len(records)
                logger.warning("audit journal: replayed %d rows of %s (a process that was killed)", len(records), path)

    # -- the group-commit task -----------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        self._stopping = False
        self._wake = asyncio.Event()
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        await self._replay()
        self._task = asyncio.create_task(self._run(), name="tframex-audit-journal")

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.checkpoint_seconds / 2):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._commit()
                if self._stopping:
                    return
                await self._checkpoint()
            except Exception:  # a bug must not stop every durable response for good
                logger.exception("audit journal: commit failed; retrying")

    async def _commit(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            upto = self._appended
        if lines:
            try:
                await asyncio.to_thread(self._write, lines)
            except OSError as exc:
                # The responses waiting for these rows must not go out as if the rows were safe:
                # they fail; the lines stay first in line, so a later success covers them too.
                logger.critical("audit journal: cannot write %s: %s", self._path or self.directory, exc)
                with self._lock:
                    self._lines[:0] = lines
                waiters, self._waiters = self._waiters, []
                for _, fut in waiters:
                    if not fut.done():
                        fut.set_exception(StorageError("the audit journal cannot be written"))
                return
            self.fsyncs_total += 1
        self._synced = upto
        # Targets only grow (each is the count of lines appended when its request asked).
        while self._waiters and self._waiters[0][0] <= upto:
            _, fut = self._waiters.pop(0)
            if not fut.done():
                fut.set_result(None)

    async def _checkpoint(self, force: bool = False) -> None:
        """Retire the current file when old or big enough (or at ``force``); it is deleted once
        the writer confirms its rows, in a task of its own so commits never wait for the database."""
        handle = self._file
        if handle is None:
            return
        size = handle.tell()
        old = time.monotonic() - self._opened_at >= self.checkpoint_seconds
        if not (size and (force or old or size >= self.checkpoint_bytes)):
            return
        assert self._path is not None
        retired = self._path
        if force:
            handle.close()
            self._file = self._path = None
        else:
            await asyncio.to_thread(self._open_new)
        task = asyncio.create_task(self._confirm(retired), name="tframex-audit-journal-checkpoint")
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)

    async def _confirm(self, path: Path) -> None:
        # Every row of a retired file was handed to the writer before the file was retired.
        try:
            await self.writer.flush()
        except Exception:
            logger.exception("audit journal: the write queue did not flush; %s is kept for replay", path)
            return
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def stop(self) -> None:
        """Shutdown: commit what is left, wait for the writer, remove this process's files."""
        task, self._task = self._task, None
        if task is None:
            return
        # Not cancelled: a commit in flight finishes and releases the responses waiting for it.
        self._stopping = True
        assert self._wake is not None
        self._wake.set()
        await task
        await self._commit()
        await self._checkpoint(force=True)
        if self._file is not None:  # nothing was ever written to it
            self._file.close()
            if self._path is not None:
                self._path.unlink(missing_ok=True)
            self._file = self._path = None
        if self._confirming:
            await asyncio.gather(*self._confirming)


def get_journal(services: Any) -> AuditJournal:
    """The stack's journal: ``services.journal``."""
    journal: AuditJournal = services.journal
    return journal
