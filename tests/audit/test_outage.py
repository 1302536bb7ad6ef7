"""A database outage: audit rows spill to disk while PostgreSQL is unreachable (through a TCP proxy
this test controls; the shared server keeps running) and land exactly once after it returns."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.audit.server_app import config, starlette_app
from tframex_asgi.audit.export import verify_storage
from tframex_asgi.config.persistence import PersistenceConfig
from tframex_asgi.stack import build_stack
from tframex_asgi.storage import open_storage

HMAC = b"server-app-hmac-key-0123"


class TCPProxy:
    """Forwards to PostgreSQL; ``down()`` cuts every connection and refuses new ones until ``up()``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.is_up = True
        self.server: asyncio.Server | None = None
        self.conns: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.conns.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.conns.difference_update((writer, up_writer))

    def down(self) -> None:
        self.is_up = False
        for conn in list(self.conns):
            conn.transport.abort()
        self.conns.clear()

    def up(self) -> None:
        self.is_up = True

    async def close(self) -> None:
        self.down()
        if self.server is not None:
            self.server.close()


def through(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


async def test_outage_spills_and_replays_every_row_once(pg_schema_dsn: str, tmp_path: Path) -> None:
    target = urlsplit(pg_schema_dsn)
    proxy = TCPProxy(target.hostname or "127.0.0.1", target.port or 5432)
    url = through(pg_schema_dsn, await proxy.start())
    spill = tmp_path / "spill.jsonl"
    stack = build_stack(starlette_app(), config(url, str(spill)))
    writer: Any = None
    try:
        async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(app=stack), base_url="http://t") as c:
            writer = stack.services.writer

            async def burst(n: int, tag: str) -> None:
                for i in range(n):
                    await c.get("/slow", params={"s": "0"}, headers={"x-request-id": f"{tag}-{i}"})
                    await c.get("/secret", headers={"x-api-key": "tfx_wrong", "x-request-id": f"{tag}-d{i}"})

            await burst(5, "before")
            await writer.flush()
            proxy.down()
            await burst(10, "during")
            await writer.flush()  # durable = in the spill file
            assert writer.spilled_total > 0 and spill.exists()
            proxy.up()
            await burst(5, "after")
            for _ in range(600):  # replay runs in the background with backoff (at most 5 s)
                if writer.depth == 0:
                    break
                await asyncio.sleep(0.05)
            assert writer.depth == 0
        assert writer.dropped_total == 0 and writer.rejected_total == 0
    finally:
        await proxy.close()
    # After shutdown (end record written), read directly, not through the proxy.
    store = open_storage(pg_schema_dsn, PersistenceConfig(enabled=True, connection_string=pg_schema_dsn))
    async with store:
        rows = await store.read("audit_logs")
        report = await verify_storage(store, HMAC)
    requests = [r for r in rows if r["action"] != "audit.chain_end"]
    expected = {
        f"{tag}-{p}{i}" for tag, n in (("before", 5), ("during", 10), ("after", 5)) for i in range(n) for p in ("", "d")
    }
    assert sorted(r["request_id"] for r in requests) == sorted(expected)  # each exactly once
    assert report.ok, report.problems
    assert (report.rows, report.closed_chains, report.open_chains) == (len(expected) + 1, 1, [])


@pytest.fixture(autouse=True)
def _quiet_queue_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", logger="tframex_asgi.storage.queue")


async def test_shutdown_during_an_outage_keeps_rows_for_the_next_start(pg_schema_dsn: str, tmp_path: Path) -> None:
    target = urlsplit(pg_schema_dsn)
    proxy = TCPProxy(target.hostname or "127.0.0.1", target.port or 5432)
    url = through(pg_schema_dsn, await proxy.start())
    spill = tmp_path / "spill.jsonl"
    try:
        first = build_stack(starlette_app(), config(url, str(spill)))
        async with first, httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://t") as c:
            proxy.down()
            for i in range(8):
                await c.get("/secret", headers={"x-api-key": "tfx_wrong", "x-request-id": f"down-{i}"})
        # Shut down while the database is unreachable: the rows (end record included) wait on disk.
        assert spill.exists() and spill.stat().st_size > 0
        proxy.up()
        second = build_stack(starlette_app(), config(url, str(spill)))
        async with second, httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://t") as c:
            await c.get("/secret", headers={"x-api-key": "tfx_wrong", "x-request-id": "up-0"})
    finally:
        await proxy.close()
    store = open_storage(pg_schema_dsn, PersistenceConfig(enabled=True, connection_string=pg_schema_dsn))
    async with store:
        rows = await store.read("audit_logs")
        report = await verify_storage(store, HMAC)
    ids = sorted(r["request_id"] for r in rows if r["action"] != "audit.chain_end")
    assert ids == sorted([f"down-{i}" for i in range(8)] + ["up-0"])
    assert report.ok, report.problems
    assert (report.chains, report.closed_chains) == (2, 2)
