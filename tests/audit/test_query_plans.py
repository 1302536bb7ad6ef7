"""Every documented GET /audit query and `audit tail` is an index range scan (EXPLAIN), on SQLite
and PostgreSQL: no full scan and no sort of the table, so the cost does not grow with it.

The SQL is captured from the real route (a wrapper around the storage's ``_fetch``), then
explained with the same parameters on the same database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest

from tests.audit.test_paging import CHAINS, T0, USERS, audit_rows, client_for, open_store
from tframex_asgi.audit.routes import query_audit
from tframex_asgi.storage.base import BaseStorage

ROWS = 30_000


def documented_queries() -> list[dict[str, str]]:
    """One query per documented filter, the time window, combinations, and deep cursor pages."""
    since, until = T0 + dt.timedelta(seconds=5_000), T0 + dt.timedelta(seconds=9_000)
    window = {"since": since.isoformat(), "until": until.isoformat()}
    return [
        {},
        {"user_id": USERS[1]},
        {"action": "POST /agents/{name}/run"},
        {"status": "denied"},
        {"reason": "invalid_token"},
        {"request_id": "req-12345"},
        {"chain_id": CHAINS[0]},
        window,
        {"since": window["since"]},
        {"until": window["until"]},
        {"status": "error", **window},
        {"user_id": USERS[0], "action": "GET /agents"},
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{request.getfixturevalue('tmp_path')}/plans.db"
    return str(request.getfixturevalue("pg_schema_dsn"))


class Capture:
    """Wraps ``storage._fetch``: records each audit_logs SELECT the route runs."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.original = storage._fetch
        self.statements: list[tuple[str, Sequence[Any]]] = []

    async def __call__(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        if sql.startswith("SELECT") and 'FROM "audit_logs"' in sql:
            self.statements.append((sql, list(params)))
        rows: list[Sequence[Any]] = await self.original(sql, params)
        return rows


async def explain(storage: Any, sql: str, params: Sequence[Any]) -> str:
    if storage.url.startswith("sqlite"):
        rows = await storage.original_fetch("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(str(r[-1]) for r in rows)
    rows = await storage.original_fetch("EXPLAIN " + sql, params)
    return "\n".join(str(r[0]) for r in rows)


def assert_index_range_scan(plan: str, sql: str) -> None:
    where = f"\nSQL: {sql}\nplan:\n{plan}"
    assert "idx_audit_logs_" in plan, "no audit_logs index used" + where
    # SQLite: "USE TEMP B-TREE FOR ORDER BY" is a sort; "SCAN audit_logs" without an index is a full scan.
    # PostgreSQL: a Sort node or a Seq Scan.
    assert "TEMP B-TREE" not in plan, "the rows are sorted" + where
    for line in plan.splitlines():
        if "Sort" in line and "Sort Key" not in line:
            # PostgreSQL may read the seed's (user_id, created_at) index and order ties of one
            # created_at by id: bounded by LIMIT plus one timestamp's rows, not by the table.
            assert "Incremental Sort" in line and "Presorted Key: created_at" in plan, "the rows are sorted" + where
    assert "Seq Scan" not in plan and "SCAN audit_logs\n" not in plan + "\n", "full table scan" + where


async def test_every_documented_audit_query_is_an_index_range_scan(store_url: str) -> None:
    store: BaseStorage = await open_store(store_url)
    try:
        await store.write_many("audit_logs", audit_rows(ROWS))
        if store_url.startswith("postgresql"):
            await store._execute("ANALYZE audit_logs", ())  # type: ignore[attr-defined]
        capture = Capture(store)
        store.original_fetch = capture.original  # type: ignore[attr-defined]
        store._fetch = capture  # type: ignore[attr-defined]
        async with client_for(store) as client:
            for query in documented_queries():
                first = await client.get("/audit", params=query)
                assert first.status_code == 200, first.text
                cursor = first.json()["next_cursor"]
                if cursor:  # a following page: the key condition is part of the range
                    assert (await client.get("/audit", params={**query, "cursor": cursor})).status_code == 200
        # `audit tail` reads the newest rows the same way.
        await query_audit(store, {}, limit=20)
        assert len(capture.statements) >= len(documented_queries()) + 1
        for sql, params in capture.statements:
            assert_index_range_scan(await explain(store, sql, params), sql)
    finally:
        await store.close()
