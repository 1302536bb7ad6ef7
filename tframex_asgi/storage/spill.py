"""The write queue's local append-only spill file (JSON lines), used while the database is down.

One line per row: ``{"t": table, "r": {column: value}}``. Timestamps are ISO strings and UUIDs
plain strings, which :func:`~tframex_asgi.storage.validate.prepare_insert` accepts back, so a
replayed row is validated exactly like a fresh one. The file is locked (``flock``) so two processes
never share one; a busy path makes the second process use ``path.1``, ``path.2``...
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

__all__ = ["SpillFile", "encode_line"]

logger = logging.getLogger("tframex_asgi.storage.spill")
_MAX_SIBLINGS = 64


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def encode_line(table: str, row: Mapping[str, Any]) -> bytes:
    """One spill line; raises TypeError/ValueError for a value JSON cannot hold."""
    record = {"t": table, "r": {k: _plain(v) for k, v in row.items()}}
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8", "surrogatepass")


class SpillFile:
    """Append at the end, read from an offset, truncate once everything has been replayed."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.requested = Path(path)
        self.path = self.requested
        self._file: IO[bytes] | None = None
        self.read_offset = 0

    def open(self) -> None:
        if self._file is not None:
            return
        self.requested.parent.mkdir(parents=True, exist_ok=True)
        for n in range(_MAX_SIBLINGS):
            candidate = self.requested if n == 0 else self.requested.with_name(f"{self.requested.name}.{n}")
            handle = open(candidate, "a+b")  # noqa: SIM115 - held open for the writer's lifetime
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self._file, self.path = handle, candidate
            self.read_offset = 0
            self._terminate_partial_line()
            return
        raise OSError(f"every spill file {self.requested}[.1-.{_MAX_SIBLINGS - 1}] is locked by another process")

    def candidates(self) -> list[Path]:
        return [self.requested] + [
            self.requested.with_name(f"{self.requested.name}.{n}") for n in range(1, _MAX_SIBLINGS)
        ]

    def adopt_orphans(self) -> int:
        """Move the rows of spill files no live process holds (left by a crashed worker) into ours.

        Returns how many lines were adopted. A file another process holds is left alone.
        """
        adopted = 0
        for path in self.candidates():
            if path == self.path or not path.exists() or path.stat().st_size == 0:
                continue
            with open(path, "r+b") as orphan:
                try:
                    fcntl.flock(orphan.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live worker's file
                data = orphan.read()
                if data and not data.endswith(b"\n"):
                    data += b"\n"  # a cut last line stays a separate (skipped) line
                self.append([data])
                self.sync()  # ours is durable before theirs is removed
                adopted += data.count(b"\n")
                orphan.truncate(0)
                path.unlink(missing_ok=True)
        return adopted

    def _terminate_partial_line(self) -> None:
        # A crash mid-append leaves a line without "\n"; end it so the next append starts clean
        # (the cut line is skipped as corrupt; it was never acknowledged as durable).
        handle = self._handle()
        size = os.fstat(handle.fileno()).st_size
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                handle.seek(0, os.SEEK_END)
                handle.write(b"\n")
                handle.flush()

    def close(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.flush()
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()

    def _handle(self) -> IO[bytes]:
        if self._file is None:
            self.open()
        assert self._file is not None
        return self._file

    def append(self, lines: list[bytes]) -> None:
        handle = self._handle()
        handle.seek(0, os.SEEK_END)
        handle.write(b"".join(lines))
        handle.flush()  # in the OS after a process crash; fsync() covers a machine crash

    def sync(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def size(self) -> int:
        return os.fstat(self._handle().fileno()).st_size

    @property
    def pending(self) -> bool:
        return self._file is not None and self.size() > self.read_offset

    def read_batch(self, max_rows: int) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        """Up to ``max_rows`` rows from the read offset, and the offset after them."""
        handle = self._handle()
        handle.seek(self.read_offset)
        rows: list[tuple[str, dict[str, Any]]] = []
        offset = self.read_offset
        while len(rows) < max_rows:
            line = handle.readline()
            if not line.endswith(b"\n"):
                break  # end of file, or a line a crash cut short (never acknowledged)
            offset += len(line)
            try:
                record = json.loads(line)
                rows.append((record["t"], record["r"]))
            except (ValueError, KeyError, TypeError):
                logger.error("skipping a corrupt line at byte %d of %s", offset - len(line), self.path)
        return rows, offset

    def reset(self) -> None:
        """Everything was replayed: start the file again from empty."""
        handle = self._handle()
        handle.truncate(0)
        handle.flush()
        self.read_offset = 0
