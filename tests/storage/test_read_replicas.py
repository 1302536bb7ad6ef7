"""Read replicas against a real streaming replica: a PostgreSQL primary and a hot standby made
with ``pg_basebackup`` by the test itself (temp dirs, random loopback ports), never the shared
server. Reads go to the replica, writes and reads-your-writes to the primary, and a replica that
is down is skipped."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from tests.conftest import service_missing
from tests.own_services import Cluster, _pg_bin
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.errors import ConfigError
from tframex_asgi.storage import open_storage
from tframex_asgi.storage.replicas import ReplicatedPostgresStorage


class Standby(Cluster):
    """A hot standby of ``primary``, cloned with pg_basebackup -R (streaming replication)."""

    def __init__(self, primary: Cluster) -> None:
        super().__init__(primary.bindir)
        self.primary = primary

    def init(self) -> None:
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
            "-D", str(self.data), "-R", "-X", "stream", "--no-sync",
        )  # fmt: skip
        self.start()


@pytest.fixture
def replicated() -> Iterator[tuple[Cluster, Standby]]:
    bindir = _pg_bin()
    if bindir is None or shutil.which("runuser") is None:
        service_missing("PostgreSQL clusters of the test's own", RuntimeError("needs runuser and pg_ctl"))
    assert bindir is not None
    primary = Cluster(bindir)
    standby = Standby(primary)
    try:
        primary.init()
        standby.init()
    except (subprocess.SubprocessError, OSError) as exc:
        standby.destroy()
        primary.destroy()
        service_missing("a streaming replica of the test's own", exc)
    yield primary, standby
    standby.destroy()
    primary.destroy()


def _config(primary: Cluster, standby: Standby) -> EnterpriseConfig:
    return EnterpriseConfig.from_kwargs(
        enable_persistence=True,
        persistence_config={"connection_string": primary.dsn, "read_replicas": True, "replica_urls": [standby.dsn]},
    )


async def _on_replica(dsn: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _replayed(standby: Standby, role_id: str) -> None:
    for _ in range(200):
        if await _on_replica(standby.dsn, "SELECT to_regclass('roles') IS NOT NULL") and await _on_replica(
            standby.dsn, "SELECT count(*) FROM roles WHERE id = $1", uuid.UUID(role_id)
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the replica never replayed the write")


async def test_reads_go_to_the_replica_and_read_your_writes_to_the_primary(
    replicated: tuple[Cluster, Standby],
) -> None:
    primary, standby = replicated
    cfg = _config(primary, standby).persistence
    db = open_storage(cfg.url, cfg)
    assert isinstance(db, ReplicatedPostgresStorage)
    await db.connect()  # migrations run on the primary
    try:

        async def write(name: str) -> str:
            return await db.write("roles", {"id": str(uuid.uuid4()), "name": name})

        first = await asyncio.create_task(write("first"))  # in a task of its own: this context did not write
        await _replayed(standby, first)
        assert [r["name"] for r in await db.read("roles", {"id": first})] == ["first"]
        assert db.replica_reads == 1

        # Replay paused: the replica lags. A read here (no write in this context) goes to the
        # replica and does not see the new row; the writer's own read-back goes to the primary.
        await _on_replica(standby.dsn, "SELECT pg_wal_replay_pause()")

        async def write_and_read_back() -> list[str]:
            rid = await write("second")
            return [r["name"] for r in await db.read("roles", {"id": rid})]

        assert await asyncio.create_task(write_and_read_back()) == ["second"]
        assert await db.count("roles", {"name": "second"}) == 0  # the lagging replica answered
        await _on_replica(standby.dsn, "SELECT pg_wal_replay_resume()")
        for _ in range(200):
            if await db.count("roles", {"name": "second"}) == 1:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the replica never caught up")

        # The primary goes away: reads keep being served by the replica, but the health check
        # (what /readyz asks) is the primary's own.
        primary.stop("immediate")
        assert await db.count("roles", {"name": "first"}) == 1
        assert not await db.ping()
        primary.start()
        for _ in range(100):
            if await db.ping():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the primary never came back")

        # The replica goes away: reads fall back to the primary, nothing fails.
        standby.stop("immediate")
        before = db.replica_reads
        assert await db.count("roles", {"name": "first"}) == 1
        assert db.replica_reads == before
    finally:
        await db.close()


def test_replica_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"persistence_config\.replica_urls: is required with read_replicas"):
        EnterpriseConfig.from_kwargs(
            enable_persistence=True,
            persistence_config={"connection_string": "postgresql://p/db", "read_replicas": True},
        )
    with pytest.raises(ConfigError, match=r"replica_urls: read replicas need a postgresql://"):
        EnterpriseConfig.from_kwargs(
            enable_persistence=True, persistence_config={"backend": "sqlite", "replica_urls": ["postgresql://r/db"]}
        )
    with pytest.raises(ConfigError, match=r"replica_urls\[0\]: must be a postgresql://"):
        EnterpriseConfig.from_kwargs(
            enable_persistence=True,
            persistence_config={"connection_string": "postgresql://p/db", "replica_urls": ["sqlite:///x.db"]},
        )
