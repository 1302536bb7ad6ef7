"""The write queue: order, batching, spill on outage, replay without duplicates."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.config.persistence import WriteQueueConfig
from tframex_asgi.errors import StorageError
from tframex_asgi.services import Services
from tframex_asgi.storage import BaseStorage, open_storage
from tframex_asgi.storage.memory import MemoryStorage
from tframex_asgi.storage.queue import WriteQueue, get_writer

from .pgproxy import Proxy

FAST = WriteQueueConfig(max_size=1000, batch_size=50, flush_interval=0.01)


class Flaky(MemoryStorage):
    """Memory storage that can be 'down', or commit and then lose the acknowledgement."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.lose_ack = False
        self.batches: list[int] = []

    async def write_many(
        self, table: str, rows: Sequence[Mapping[str, Any]], *, skip_existing: bool = False
    ) -> list[str]:
        if self.down:
            raise StorageError("connection refused")
        ids = await super().write_many(table, rows, skip_existing=skip_existing)
        self.batches.append(len(rows))
        if self.lose_ack:
            self.lose_ack = False
            raise StorageError("connection reset after COMMIT")
        return ids


def _writer(storage: BaseStorage, tmp_path: Path, config: WriteQueueConfig = FAST) -> WriteQueue:
    return WriteQueue(
        storage, config, spill_path=str(tmp_path / "spill.jsonl"), retry_delay=0.005, max_retry_delay=0.02
    )


def _flow(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    parent = {"id": str(uuid.uuid4()), "flow_name": f"f{i}"}
    child = {"execution_id": parent["id"], "step_name": "s", "step_type": "agent", "step_order": i}
    return parent, child


async def test_rows_are_written_in_order_in_batches(tmp_path: Path) -> None:
    store = Flaky()
    writer = _writer(store, tmp_path)
    await writer.start()
    for i in range(120):
        parent, child = _flow(i)
        writer.submit("flow_executions", parent)
        writer.submit("flow_steps", child)  # needs its parent first (FK)
    await writer.flush()
    assert await store.count("flow_executions") == 120 and await store.count("flow_steps") == 120
    assert writer.written_total == 240 and writer.depth == 0 and writer.dropped_total == 0
    steps = await store.read("flow_steps", limit=1)
    assert steps[0]["id"] and steps[0]["status"] == "pending"
    await writer.stop()
    assert not (tmp_path / "spill.jsonl").exists()


async def test_outage_spills_then_replays_without_duplicates(tmp_path: Path) -> None:
    store = Flaky()
    writer = _writer(store, tmp_path)
    await writer.start()
    store.down = True
    ids = []
    for i in range(300):
        parent, child = _flow(i)
        ids.append(parent["id"])
        writer.submit("flow_executions", parent)
        writer.submit("flow_steps", child)
        if i % 50 == 0:
            await asyncio.sleep(0)
    await writer.flush()  # durable = in the spill file
    assert writer.spilled_total > 0 and await store.count("flow_executions") == 0
    lines = (tmp_path / "spill.jsonl").read_bytes().splitlines()
    assert json.loads(lines[0])["t"] == "flow_executions"
    store.down = False
    await writer.drain()
    assert await store.count("flow_executions") == 300 and await store.count("flow_steps") == 300
    assert {r["id"] for r in await store.read("flow_executions")} == set(ids)
    assert writer.dropped_total == 0 and writer.rejected_total == 0
    await writer.stop()
    assert not (tmp_path / "spill.jsonl").exists()


async def test_lost_acknowledgement_is_not_written_twice(tmp_path: Path) -> None:
    store = Flaky()
    writer = _writer(store, tmp_path)
    await writer.start()
    store.lose_ack = True  # the first batch commits, then the connection "drops"
    for i in range(10):
        writer.submit("metrics", {"metric_name": f"m{i}", "metric_type": "counter", "value": i})
    await writer.drain()
    assert await store.count("metrics") == 10
    assert writer.spilled_total == 10  # replayed with ON CONFLICT DO NOTHING
    await writer.stop()


async def test_full_queue_overflows_to_spill_and_keeps_order(tmp_path: Path) -> None:
    store = Flaky()
    writer = _writer(store, tmp_path, WriteQueueConfig(max_size=10, batch_size=5, flush_interval=0.01))
    await writer.start()
    for i in range(200):  # no await: the writer cannot keep up, the queue overflows
        parent, child = _flow(i)
        writer.submit("flow_executions", parent)
        writer.submit("flow_steps", child)
    assert writer.spilled_total > 0 and writer.depth == 400
    await writer.drain()
    assert await store.count("flow_steps") == 200 and writer.rejected_total == 0
    await writer.stop()


async def test_rows_left_by_a_crash_are_replayed_at_start(tmp_path: Path) -> None:
    store = Flaky()
    first = _writer(store, tmp_path)
    store.down = True
    await first.start()
    first.submit("roles", {"name": "r1"})
    first.submit("roles", {"name": "r2"})
    await first.flush()
    first._task.cancel()  # simulate a crash: no orderly stop
    first.spill.close()
    with (tmp_path / "spill.jsonl").open("ab") as f:
        f.write(b'{"t":"roles","r":{"name":"cut sh')  # a line the crash cut short
    store.down = False
    second = _writer(store, tmp_path)
    await second.start()
    second.submit("roles", {"name": "r3"})
    await second.drain()
    assert sorted(r["name"] for r in await store.read("roles")) == ["r1", "r2", "r3"]
    await second.stop()


async def test_bad_rows_are_rejected_alone(tmp_path: Path) -> None:
    store = Flaky()
    writer = _writer(store, tmp_path)
    await writer.start()
    writer.submit("nope", {"a": 1})
    writer.submit("users", {"username": "x", "bogus": 1})
    writer.submit("roles", {"name": "ok1"})
    writer.submit("roles", {"name": "x" * 200})  # VARCHAR(100)
    writer.submit("roles", {"name": "ok2"})
    # A token identity has no users row: the execution is kept, unlinked from users.
    writer.submit("agent_executions", {"agent_name": "a", "user_id": str(uuid.uuid4())})
    await writer.drain()
    assert sorted(r["name"] for r in await store.read("roles")) == ["ok1", "ok2"]
    assert (await store.read("agent_executions"))[0]["user_id"] is None
    assert writer.rejected_total == 3 and writer.dropped_total == 0
    await writer.stop()


async def test_get_writer_is_cached_and_follows_lifespan(tmp_path: Path) -> None:
    config = EnterpriseConfig.from_kwargs(
        enable_persistence=True,
        persistence_config={"connection_string": "memory://", "queue": {"spill_path": str(tmp_path / "s.jsonl")}},
    )
    services = Services(config)
    writer = get_writer(services)
    assert get_writer(services) is writer and services.writer is writer
    await services.startup()
    writer.submit("roles", {"name": "r"})
    await services.shutdown()  # flushes before the storage closes
    assert await services.storage.count("roles") == 1


async def test_postgresql_outage_mid_load_loses_and_duplicates_nothing(pg_schema_dsn: str, tmp_path: Path) -> None:
    proxy = await Proxy(5432).start()
    dsn = pg_schema_dsn.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert dsn != pg_schema_dsn
    store = open_storage(dsn)
    await store.connect()
    writer = _writer(store, tmp_path, WriteQueueConfig(max_size=2000, batch_size=250, flush_interval=0.01))
    await writer.start()
    ids: list[str] = []
    try:
        for i in range(6000):
            parent, child = _flow(i)
            ids.append(parent["id"])
            writer.submit("flow_executions", parent)
            writer.submit("flow_steps", child)
            if i % 100 == 99:
                await asyncio.sleep(0)  # let the writer run, as a server's event loop would
            if i == 2000:
                proxy.cut()  # PostgreSQL "crashes" mid-load
            if i == 3000:
                while writer.spilled_total == 0:  # noqa: ASYNC110 - waiting for the writer to notice
                    await asyncio.sleep(0.01)
            if i == 4000:
                proxy.restore()
        await writer.drain()
    finally:
        await writer.stop()
        await proxy.close()
    assert writer.spilled_total > 0 and writer.dropped_total == 0 and writer.rejected_total == 0
    direct = open_storage(pg_schema_dsn)
    await direct.connect()
    try:
        assert await direct.count("flow_executions") == 6000
        assert await direct.count("flow_steps") == 6000
        stored = {r["id"] for r in await direct.read("flow_executions")}
        assert stored == set(ids)
    finally:
        await direct.close()
    assert not (tmp_path / "spill.jsonl").exists()


async def test_spill_files_of_crashed_siblings_are_adopted(tmp_path: Path) -> None:
    store = Flaky()
    (tmp_path / "spill.jsonl.3").write_bytes(b'{"t":"roles","r":{"name":"from-worker-3"}}\n')
    holder = _writer(store, tmp_path)
    holder.spill.open()  # a live worker holds spill.jsonl: its rows are not ours to replay
    holder.spill.append([b'{"t":"roles","r":{"name":"live"}}\n'])
    writer = _writer(store, tmp_path)
    await writer.start()
    await writer.drain()
    assert [r["name"] for r in await store.read("roles")] == ["from-worker-3"]
    assert writer.spill.path.name == "spill.jsonl.1" and not (tmp_path / "spill.jsonl.3").exists()
    await writer.stop()
    holder.spill.close()


async def test_postgresql_backends_killed_mid_load_lose_and_duplicate_nothing(
    pg_schema_dsn: str, tmp_path: Path
) -> None:
    """The server side of a restart: every connection of this run's own database is terminated."""
    import asyncpg

    store = open_storage(pg_schema_dsn)
    await store.connect()
    writer = _writer(store, tmp_path, WriteQueueConfig(max_size=2000, batch_size=250, flush_interval=0.01))
    await writer.start()
    admin = await asyncpg.connect(pg_schema_dsn)
    kill = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    killed = 0
    try:
        for i in range(4000):
            writer.submit("metrics", {"metric_name": "load", "metric_type": "counter", "value": i})
            if i % 100 == 99:
                await asyncio.sleep(0)
            if i in (1000, 2500):
                killed += await admin.fetchval(kill)
        await writer.drain()
    finally:
        await admin.close()
        await writer.stop()
    try:
        assert killed >= 1 and writer.dropped_total == 0 and writer.rejected_total == 0
        assert await store.count("metrics") == 4000
        values = sorted(int(r["value"]) for r in await store.read("metrics"))
        assert values == list(range(4000))  # every row once: none lost, none twice
    finally:
        await store.close()
