"""A real PostgreSQL restart in the middle of a load: no row lost, none duplicated.

The test starts its own throw-away PostgreSQL cluster (initdb in a temp dir, random loopback port,
run as the `postgres` OS user) so it can restart a real server without touching the shared one;
it stops only that cluster, by its data directory, and removes it.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from tests.own_services import Cluster
from tframex_asgi.config.persistence import WriteQueueConfig
from tframex_asgi.storage import open_storage
from tframex_asgi.storage.queue import WriteQueue


async def test_postgresql_restart_mid_load_loses_and_duplicates_nothing(own_postgres: Cluster, tmp_path: Path) -> None:
    store = open_storage(own_postgres.dsn)
    await store.connect()  # applies the migrations
    writer = WriteQueue(
        store,
        WriteQueueConfig(max_size=2000, batch_size=500, flush_interval=0.01),
        spill_path=str(tmp_path / "spill.jsonl"),
        retry_delay=0.05,
        max_retry_delay=0.2,
    )
    await writer.start()
    ids: list[str] = []

    def submit_one() -> None:
        parent = {"id": str(uuid.uuid4()), "flow_name": f"flow-{len(ids)}"}
        ids.append(parent["id"])
        writer.submit("flow_executions", parent)
        step = {"execution_id": parent["id"], "step_name": "s", "step_type": "agent", "step_order": len(ids)}
        writer.submit("flow_steps", step)

    async def bounce() -> None:
        # A real restart: fast shutdown, half a second down, start again.
        await asyncio.to_thread(own_postgres.stop)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(own_postgres.start)

    try:
        for _ in range(3_000):
            submit_one()
        await asyncio.sleep(0.05)
        restart = asyncio.create_task(bounce())
        while not restart.done():  # rows keep coming while the server goes down and comes back
            for _ in range(50):
                submit_one()
            await asyncio.sleep(0.01)
        await restart
        for _ in range(3_000):
            submit_one()
        await writer.drain()
    finally:
        await writer.stop()
        await store.close()
    assert writer.spilled_total > 0, "the restart never hit the writer: the test did not test anything"
    assert writer.dropped_total == 0 and writer.rejected_total == 0
    direct = open_storage(own_postgres.dsn)
    await direct.connect()
    try:
        assert await direct.count("flow_executions") == len(ids)
        assert await direct.count("flow_steps") == len(ids)
        assert {r["id"] for r in await direct.read("flow_executions")} == set(ids)
    finally:
        await direct.close()
    assert not (tmp_path / "spill.jsonl").exists() or (tmp_path / "spill.jsonl").stat().st_size == 0
