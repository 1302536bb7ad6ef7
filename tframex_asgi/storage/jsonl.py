"""A JSON Lines file as an export target: ``data export --table T --to rows.jsonl``.

One JSON object per line per row, times as ISO 8601 UTC with ``Z``, UUIDs and other driver
types as strings, in the order the rows were read. Written to ``<path>.part`` and renamed when
complete, so a crash never leaves a truncated file under the final name. It accepts only what
an export needs (``connect``, ``write_many``, ``close``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from tframex_asgi.timefmt import utc_iso

__all__ = ["JSONLTarget", "is_jsonl_target", "json_value"]


def is_jsonl_target(url: str) -> bool:
    """A plain file path ending in ``.jsonl`` (or ``file://...jsonl``)."""
    return "://" not in url.removeprefix("file://") and url.lower().endswith((".jsonl", ".ndjson"))


def json_value(value: Any) -> Any:
    """One value as JSON data: aware or naive-UTC datetimes as ``...Z``."""
    if isinstance(value, dt.datetime):
        return utc_iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)


class JSONLTarget:
    def __init__(self, url: str) -> None:
        self.path = Path(url.removeprefix("file://"))
        self._part = self.path.with_name(self.path.name + ".part")
        self._file: IO[str] | None = None

    async def connect(self) -> None:
        if self._file is None:
            self._file = self._part.open("w", encoding="utf-8")

    async def write_many(
        self, table: str, rows: Iterable[Mapping[str, Any]], *, skip_existing: bool = False
    ) -> list[str]:
        assert self._file is not None, "connect() first"
        for row in rows:
            self._file.write(json.dumps({k: json_value(v) for k, v in row.items()}, separators=(",", ":")) + "\n")
        return []

    async def close(self, *, complete: bool = True) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        file.flush()
        os.fsync(file.fileno())
        file.close()
        if complete:
            os.replace(self._part, self.path)
        else:
            self._part.unlink(missing_ok=True)
