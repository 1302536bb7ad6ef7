"""`tframex-asgi migrate` and `tframex-asgi data prune|export`."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from tframex_asgi.cli import main
from tframex_asgi.errors import ConfigError
from tframex_asgi.storage import open_storage
from tframex_asgi.storage.validate import utcnow


def _seed(url: str, days_old: list[int]) -> None:
    async def run() -> None:
        store = open_storage(url)
        await store.connect()
        now = utcnow()
        await store.write_many(
            "audit_logs",
            [{"action": "a", "resource_type": "r", "created_at": now - timedelta(days=d)} for d in days_old],
        )
        await store.close()

    asyncio.run(run())


def _count(url: str, table: str) -> int:
    async def run() -> int:
        store = open_storage(url)
        await store.connect()
        try:
            return await store.count(table)
        finally:
            await store.close()

    return asyncio.run(run())


def test_migrate_creates_every_table_and_index_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    assert main(["migrate", "--url", url]) == 0
    assert "applied migrations 1, 2, 3; schema version 3" in capsys.readouterr().out
    assert main(["migrate", "--url", url]) == 0
    assert "up to date (version 3)" in capsys.readouterr().out
    with sqlite3.connect(f"{tmp_path}/m.db") as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'idx_%'")}
        versions = [r[0] for r in db.execute("SELECT version FROM tframex_schema_migrations ORDER BY version")]
    # The seed's SQL defines 14 tables (the issue says 13, a miscount) + api_keys from migration 2.
    assert len(names - {"tframex_schema_migrations"}) == 15
    # 9 of the seed, idx_audit_logs_chain_seq (2), and the 7 keyset indexes of audit_logs (3).
    assert len(indexes) == 17 and versions == [1, 2, 3]


def test_migrate_postgresql(pg_schema_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--url", pg_schema_dsn]) == 0
    assert "applied migrations 1, 2" in capsys.readouterr().out

    async def catalog() -> tuple[int, int]:
        import asyncpg

        conn = await asyncpg.connect(pg_schema_dsn)
        try:
            schema = await conn.fetchval("SELECT current_schema()")
            tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = $1", schema)
            indexes = await conn.fetchval(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE 'idx_%'", schema
            )
            return tables, indexes
        finally:
            await conn.close()

    assert asyncio.run(catalog()) == (16, 17)  # 15 tables + the version table; 9 + 1 + 7 indexes


def test_prune_by_age(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    _seed(url, [1, 5, 40, 90])
    assert main(["data", "prune", "--url", url, "--table", "audit_logs", "--older-than", "30"]) == 0
    assert "audit_logs: deleted 2 rows older than 30 days" in capsys.readouterr().out
    assert _count(url, "audit_logs") == 2
    assert main(["data", "prune", "--url", url, "--older-than", "30"]) == 2  # --older-than needs --table


def test_config_rejects_retention_for_identity_tables() -> None:
    from tframex_asgi.config import EnterpriseConfig

    with pytest.raises(ConfigError, match="retention.users"):
        EnterpriseConfig.from_kwargs(enable_persistence=True, persistence_config={"retention": {"users": 3}})


def test_export_to_s3_with_progress_then_prune(
    tmp_path: Path, s3_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/e.db"
    _seed(url, [1, 40, 41, 42, 43])
    target = f"s3://exports-{uuid.uuid4().hex[:10]}/audit?endpoint_url={s3_endpoint}"
    args = ["data", "export", "--url", url, "--table", "audit_logs", "--to", target, "--older-than", "30"]
    assert main([*args, "--page-size", "2", "--prune"]) == 0
    out = capsys.readouterr()
    assert "audit_logs: exported 4 rows" in out.out and "pruned 4" in out.out
    assert "audit_logs 4 rows" in out.err  # progress on stderr
    assert _count(target, "audit_logs") == 4 and _count(url, "audit_logs") == 1
    assert main(["data", "export", "--url", url, "--table", "audit_logs", "--to", target]) == 0
    assert _count(target, "audit_logs") == 5  # the export is idempotent: re-running copies nothing twice
