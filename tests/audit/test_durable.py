"""``audit.durability: durable``: a real ``tframex-asgi serve`` under concurrent load is SIGKILLed;
after a restart (which replays the journal) every request that got its answer has its audit row.

The write queue lingers ``flush_interval: 1.0`` here, so without the journal the rows of the last
second before the kill would be lost (buffered mode: the rows still in memory); the journal has
to be what keeps them.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.test_serve import KEY, Server
from tframex_asgi.audit.export import verify_storage
from tframex_asgi.audit.journal import AuditJournal
from tframex_asgi.config.persistence import PersistenceConfig
from tframex_asgi.storage import open_storage

HMAC = "durable-test-hmac-key-01"


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "tframex.yaml"
    path.write_text(
        f"""
enterprise:
  persistence:
    enabled: true
    connection_string: "{url}"
    queue: {{spill_path: "{tmp_path}/spill.jsonl", flush_interval: 1.0}}
  security:
    # The load below is well over the serve defaults' 600/minute (layered under this file).
    rate_limiting: {{enabled: false}}
    audit:
      level: full
      hmac_key: {HMAC}
      durability: durable
      journal_path: "{tmp_path}/journal"
"""
    )
    return path


class Serve(Server):
    """The ``serve`` process of tests/cli/test_serve.py on ``config``."""

    def __init__(self, tmp_path: Path, config: Path) -> None:
        super().__init__(tmp_path, "--config", str(config))


async def load_then_kill(server: Serve, key: str, seconds: float = 2.5, workers: int = 16) -> list[str]:
    """Request ids of every response fully received; SIGKILL while requests are in flight."""
    answered: list[str] = []
    stop = asyncio.Event()

    async def worker(client: httpx.AsyncClient, n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            path = "/agents" if (i + n) % 3 else "/nope"  # 200s, and 403s (unmapped route) too
            try:
                response = await client.get(path, headers={"X-API-Key": key})
            except httpx.TransportError:
                return  # the kill: this request was never answered
            assert response.status_code in (200, 403), response.text
            answered.append(response.headers["x-request-id"])

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        tasks = [asyncio.create_task(worker(client, n)) for n in range(workers)]
        await asyncio.sleep(seconds)
        server.proc.send_signal(signal.SIGKILL)  # in the middle of the load: no shutdown at all
        stop.set()
        await asyncio.gather(*tasks)
    server.proc.wait(10)
    return answered


async def stored(url: str) -> tuple[list[dict[str, Any]], Any]:
    store = open_storage(url, PersistenceConfig(enabled=True, connection_string=url))
    async with store:
        rows: list[dict[str, Any]] = await store.read("audit_logs")
        report = await verify_storage(store, HMAC.encode())
    return rows, report


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/audit.db"
    return str(request.getfixturevalue("pg_schema_dsn"))


def test_sigkill_under_load_loses_no_answered_request(tmp_path: Path, db_url: str) -> None:
    config = write_config(tmp_path, db_url)
    first = Serve(tmp_path, config)
    try:
        keys = KEY.findall(first.output())
        assert len(keys) == 1, first.output()
        answered = asyncio.run(load_then_kill(first, keys[0]))
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    assert first.proc.returncode == -signal.SIGKILL
    assert len(answered) > 100
    journal = list((tmp_path / "journal").glob("journal-*.jsonl"))
    assert journal, "the killed process left no journal to replay"

    # The restart replays the journal through the write queue, then stops cleanly.
    second = Serve(tmp_path, config)
    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(60) in (0, -signal.SIGTERM), second.output()
    assert "replayed" in second.output()

    rows, report = asyncio.run(stored(db_url))
    have = {r["request_id"] for r in rows}
    missing = [rid for rid in answered if rid not in have]
    assert missing == [], f"{len(missing)} of {len(answered)} answered requests have no audit row"
    assert len({r["id"] for r in rows}) == len(rows)  # replayed rows were not written twice
    assert report.ok, report.problems  # the killed process's chain is intact, only open
    assert list((tmp_path / "journal").glob("journal-*.jsonl")) == []  # replayed files are removed


class SlowWriter:
    """A write queue stand-in that records what it was given (only the journal is under test)."""

    accepts_trusted = True

    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def submit(self, table: str, row: dict[str, Any], *, trusted: bool = False) -> None:
        self.rows.append((table, row))

    async def flush(self) -> None:
        await asyncio.sleep(0)


async def test_concurrent_waits_share_fsyncs_and_a_killed_journal_is_replayed(tmp_path: Path) -> None:
    writer = SlowWriter()
    journal = AuditJournal(writer, tmp_path / "j")
    await journal.start()

    async def request(i: int) -> None:
        journal.submit("audit_logs", {"id": f"00000000-0000-4000-8000-{i:012d}", "action": "GET /x"})
        await journal.synced()

    await asyncio.gather(*(request(i) for i in range(200)))
    # Group commit: 200 concurrent requests, each answered only after its fsync, in far fewer fsyncs.
    assert 1 <= journal.fsyncs_total < 100
    assert len(writer.rows) == 200
    # A "kill": the task and the file handle go away without stop(); the file stays behind.
    assert journal._task is not None and journal._file is not None
    journal._task.cancel()
    journal._file.close()
    again = AuditJournal(SlowWriter(), tmp_path / "j")
    await again.start()
    assert again.replayed_total == 200
    assert {r["id"] for _, r in again.writer.rows} == {r["id"] for _, r in writer.rows}
    await again.stop()
    assert list((tmp_path / "j").iterdir()) == []


async def test_a_live_workers_journal_is_left_alone(tmp_path: Path) -> None:
    """Workers share journal_path: one that starts replays only files no live process holds."""
    live = AuditJournal(SlowWriter(), tmp_path / "j")
    await live.start()
    live.submit("audit_logs", {"id": "00000000-0000-4000-8000-000000000001", "action": "GET /x"})
    await live.synced()
    starting = AuditJournal(SlowWriter(), tmp_path / "j")
    await starting.start()
    assert starting.replayed_total == 0 and starting.writer.rows == []
    assert len(list((tmp_path / "j").glob("journal-*.jsonl"))) == 1
    await starting.stop()
    await live.stop()
    assert list((tmp_path / "j").iterdir()) == []
