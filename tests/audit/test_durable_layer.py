"""The durable audit layer on a bare ASGI app: the last message of a response leaves only once its
row is fsynced in the journal; streams wait only at their end; a journal that cannot be written
fails the response instead of answering as if the row were safe; the config key is validated."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from tests.audit.test_durable import SlowWriter
from tframex_asgi.audit.journal import AuditJournal
from tframex_asgi.audit.layer import AuditMiddleware
from tframex_asgi.audit.logger import AuditLogger
from tframex_asgi.config import loads_config
from tframex_asgi.config.audit import AuditConfig
from tframex_asgi.errors import ConfigError, StorageError


async def streaming_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for chunk in (b"a", b"b", b"c"):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def http_scope(path: str = "/x") -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b"", "tframex": {}}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def durable_layer(tmp_path: Path) -> tuple[AuditMiddleware, AuditJournal, SlowWriter]:
    writer = SlowWriter()
    journal = AuditJournal(writer, tmp_path / "journal")
    audit = AuditLogger(journal, AuditConfig(level="full", durability="durable"))
    await journal.start()
    await audit.start()  # rows built in loop callbacks: the layer must build its own at once
    return AuditMiddleware(streaming_app, audit, journal=journal), journal, writer


async def test_the_last_message_waits_for_the_fsync_of_its_row(tmp_path: Path) -> None:
    layer, journal, writer = await durable_layer(tmp_path)
    seen: list[tuple[bool, int, int]] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            seen.append((message.get("more_body", False), len(writer.rows), journal._synced))

    await layer(http_scope(), _receive, send)
    # Chunks go out at once, before the row exists; the last one only with the row on disk.
    assert seen[:3] == [(True, 0, 0)] * 3
    assert seen[3] == (False, 1, 1)
    lines = [p.read_bytes() for p in (tmp_path / "journal").glob("journal-*.jsonl")]
    assert b"".join(lines).count(b'"audit_logs"') == 1
    await journal.stop()
    assert list((tmp_path / "journal").iterdir()) == []


async def test_a_journal_that_cannot_be_written_fails_the_response(tmp_path: Path) -> None:
    layer, journal, _ = await durable_layer(tmp_path)

    def disk_full(lines: list[bytes]) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    journal._write = disk_full  # type: ignore[method-assign]
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with pytest.raises(StorageError):
        await layer(http_scope(), _receive, send)
    assert [m.get("more_body") for m in sent if m["type"] == "http.response.body"] == [True, True, True]
    # The disk is back: the lines kept in memory are written with the next request's.
    del journal._write
    await layer(http_scope(), _receive, send)
    body = b"".join(p.read_bytes() for p in (tmp_path / "journal").glob("journal-*.jsonl"))
    assert body.count(b'"audit_logs"') == 2
    await journal.stop()


def test_durability_is_validated_with_its_dotted_path() -> None:
    with pytest.raises(ConfigError, match=r"enterprise\.security\.audit\.durability"):
        loads_config("enterprise:\n  security:\n    audit:\n      durability: sometimes\n")
    config = loads_config("enterprise:\n  security:\n    audit:\n      durability: durable\n")
    assert config.security.audit.durability == "durable"
    assert AuditConfig().durability == "buffered"  # today's behaviour stays the default


async def test_a_path_send_response_also_waits_for_its_row(tmp_path: Path) -> None:
    layer, journal, writer = await durable_layer(tmp_path)

    async def file_app(scope: Any, receive: Any, send: Any) -> None:
        # Starlette's FileResponse, on a server offering the ASGI path-send extension.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(tmp_path / "f.txt")})

    layer.app = file_app
    seen: list[tuple[int, int]] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.pathsend":
            seen.append((len(writer.rows), journal._synced))

    await layer(http_scope(), _receive, send)
    assert seen == [(1, 1)]
    await journal.stop()


async def test_a_write_cut_short_by_the_os_leaves_no_half_line(tmp_path: Path) -> None:
    """A real partial write (RLIMIT_FSIZE: the kernel stops the file growing mid-batch, EFBIG):
    the cut bytes are removed, so the retried batch is whole lines and replays cleanly."""
    import resource
    import signal

    layer, journal, _ = await durable_layer(tmp_path)
    await layer(http_scope(), _receive, _discard)  # one row on disk; the file exists
    (path,) = (tmp_path / "journal").glob("journal-*.jsonl")
    size = path.stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + size // 2, hard))  # room for half a row
        with pytest.raises(StorageError):
            await layer(http_scope(), _receive, _discard)
        assert path.stat().st_size == size  # the half row was cut off again
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    await layer(http_scope(), _receive, _discard)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3 and all(line.startswith(b'{"t":"audit_logs"') for line in lines)
    await journal.stop()


async def _discard(message: dict[str, Any]) -> None:
    return None
