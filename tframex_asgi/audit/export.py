"""Reading the audit table page by page, verifying it, and exporting it to JSONL or S3.

Exports are ordered by (chain_id, seq) and keep every column, so ``tframex-asgi audit verify
--file export.jsonl`` checks an archived copy exactly as it checks the database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from tframex_asgi.audit.chain import Verifier, VerifyReport
from tframex_asgi.audit.checkpoints import load_checkpoints
from tframex_asgi.audit.redact import Redactor
from tframex_asgi.audit.routes import public_row
from tframex_asgi.errors import ConfigError, ValidationError
from tframex_asgi.storage.s3client import s3_client
from tframex_asgi.util import as_naive_utc

__all__ = ["Progress", "export_rows", "iter_rows", "read_jsonl", "verify_storage"]

PAGE = 1000
_PART = 8 * 1024 * 1024  # S3 multipart part size (the minimum is 5 MiB)
CHAIN_ORDER = ("chain_id", "seq")


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, every 10 % otherwise)."""

    def __init__(self, total: int, label: str, stream: IO[str] | None = None, unit: str = "rows") -> None:
        self.total = max(total, 0)
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self._shown = -1
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, n: int = 1) -> None:
        self.done += n
        pct = 100 if self.total == 0 else min(100, self.done * 100 // self.total)
        step = pct if self._tty else pct - pct % 10
        if step != self._shown:
            self._shown = step
            self._draw(pct)

    def _draw(self, pct: int) -> None:
        bar = "#" * (pct // 4) + "." * (25 - pct // 4)
        end = "\r" if self._tty and pct < 100 else "\n"
        self.stream.write(f"{self.label} [{bar}] {pct:3d}% {self.done}/{self.total} {self.unit}{end}")
        self.stream.flush()

    def finish(self) -> None:
        if self._shown != 100:
            self._shown = 100
            self.done = max(self.done, self.total)
            self._draw(100)


async def iter_rows(
    storage: Any, table: str = "audit_logs", order: tuple[str, ...] = CHAIN_ORDER, page: int = PAGE
) -> AsyncIterator[dict[str, Any]]:
    """Every row of ``table`` in ``order``, a page at a time (constant memory).

    Storage paging is by offset: a row a live worker appends to a chain that sorts before the
    cursor shifts later rows by one, so the next page may start with rows already yielded.
    Those are skipped by id (up to a page of such appends between two reads).
    """
    offset = 0
    previous: set[str] = set()
    while True:
        rows = await storage.read(table, None, limit=page, offset=offset, order_by=list(order))
        current = {str(row.get("id")) for row in rows}
        for row in rows:
            if str(row.get("id")) not in previous:
                yield row
        if len(rows) < page:
            return
        previous = current
        offset += len(rows)


async def verify_storage(storage: Any, key: bytes | None = None) -> VerifyReport:
    verifier = Verifier(key, checkpoints=await load_checkpoints(storage))
    async for row in iter_rows(storage):
        verifier.feed(row)
    return verifier.finish()


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The rows of a JSON-lines export; a line that is not a JSON object is a ValidationError
    naming the file and line (never read as a tampered row)."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{path}:{number}: not JSON lines ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ValidationError(f"{path}:{number}: a row must be a JSON object, got {type(row).__name__}")
            yield row


def _in_window(row: Mapping[str, Any], since: dt.datetime | None, until: dt.datetime | None) -> bool:
    if since is None and until is None:
        return True
    moment = row.get("created_at")
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if not isinstance(moment, dt.datetime):
        return False
    moment = as_naive_utc(moment)
    return (since is None or moment >= since) and (until is None or moment <= until)


async def _write_jsonl(
    storage: Any,
    fh: IO[str],
    progress: Progress,
    redactor: Redactor,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> int:
    written = 0
    async for row in iter_rows(storage):
        progress.update()
        if not _in_window(row, since, until):
            continue
        fh.write(json.dumps(public_row(row, redactor), separators=(",", ":"), ensure_ascii=False) + "\n")
        written += 1
    progress.finish()
    return written


async def export_rows(
    storage: Any,
    dest: str,
    *,
    redactor: Redactor | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    endpoint_url: str | None = None,
    stream: IO[str] | None = None,
    now: dt.datetime | None = None,
) -> tuple[int, str]:
    """Export ``audit_logs`` to ``dest`` (a .jsonl path or ``s3://bucket/prefix``); returns
    (rows written, where they went)."""
    redactor = redactor or Redactor()
    total = await storage.count("audit_logs")
    progress = Progress(total, "exporting audit_logs", stream)
    if not dest.startswith("s3://"):
        path = Path(dest)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target and renamed: a reader never sees a half-written export.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                count = await _write_jsonl(storage, fh, progress, redactor, since, until)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return count, str(path)
    bucket, _, prefix = dest[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigError("--to", "expected s3://bucket/prefix")
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    key = f"{prefix.strip('/')}/audit_logs-{stamp}.jsonl".lstrip("/")
    with tempfile.TemporaryFile("w+b") as raw:
        text = _TextOut(raw)
        count = await _write_jsonl(storage, text, progress, redactor, since, until)  # type: ignore[arg-type]
        size = raw.tell()
        raw.seek(0)
        await _upload(
            raw, size, bucket, key, endpoint_url, Progress(size, f"uploading s3://{bucket}/{key}", stream, unit="bytes")
        )
    return count, f"s3://{bucket}/{key}"


class _TextOut:
    """Just enough of a text file over a binary one for :func:`_write_jsonl`."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        return self.raw.write(text.encode("utf-8"))


async def _upload(
    raw: IO[bytes], size: int, bucket: str, key: str, endpoint_url: str | None, progress: Progress
) -> None:
    async with s3_client("--to", endpoint_url) as s3:
        if size <= _PART:
            await s3.put_object(Bucket=bucket, Key=key, Body=raw.read(), ContentType="application/x-ndjson")
            progress.update(size)
            progress.finish()
            return
        upload = await s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/x-ndjson")
        parts: list[dict[str, Any]] = []
        try:
            while chunk := raw.read(_PART):
                number = len(parts) + 1
                sent = await s3.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=chunk
                )
                parts.append({"ETag": sent["ETag"], "PartNumber": number})
                progress.update(len(chunk))
            await s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
            )
        except BaseException:
            await s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            raise
        progress.finish()
