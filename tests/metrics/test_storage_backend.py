"""The ``storage`` metrics backend writes aggregated series to the seed's ``metrics`` table."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tframex_asgi import build_stack
from tframex_asgi.errors import ConfigError
from tframex_asgi.stack import EnterpriseStack
from tframex_asgi.storage import open_storage

from .helpers import endpoint


def _stack(url: str, interval: float = 0.2, **storage: object) -> EnterpriseStack:
    return build_stack(
        endpoint(),
        enable_security=False,
        enable_metrics=True,
        metrics_config={"backends": {"storage": {"enabled": True, **storage}}, "export_interval": interval},
        enable_persistence=True,
        persistence_config={"connection_string": url, "queue": {"flush_interval": 0.05}},
    )


async def _rows(url: str, name: str, total: float) -> list[dict[str, Any]]:
    """The rows of ``name`` once their values add up to ``total`` (exports run in the background)."""
    async with open_storage(url) as db:
        for _ in range(200):
            rows = await db.read("metrics", {"metric_name": name}, order_by="timestamp")
            if sum(float(r["value"]) for r in rows) >= total:
                return rows
            await asyncio.sleep(0.05)
    raise AssertionError(f"the {name} rows never added up to {total}")


async def test_series_are_written_every_export_interval(pg_schema_dsn: str) -> None:
    stack = _stack(pg_schema_dsn)
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        assert stack.layers[:2] == ("context", "metrics")
        assert (await c.get("/metrics")).status_code == 404  # only "storage" named: no Prometheus added
        for _ in range(2):
            assert (await c.post("/agents/calculator/run", json={"input": "add 2 and 40"})).status_code == 200
        first = await _rows(pg_schema_dsn, "agent_executions_total", 2)
        # A later interval: one more run, written as the increase of that interval only.
        assert (await c.post("/agents/calculator/run", json={"input": "add 1 and 1"})).status_code == 200
        runs = await _rows(pg_schema_dsn, "agent_executions_total", 3)
    # Deltas, not running totals: the rows add up to the 3 runs, the last one alone in its interval.
    assert [float(r["value"]) for r in runs[len(first) :]] == [1.0]
    assert runs[0]["labels"] == {"agent": "calculator", "status": "success"}
    assert runs[0]["metric_type"] == "counter" and runs[0]["source"] == "tframex-asgi"
    counts = await _rows(pg_schema_dsn, "agent_duration_seconds_count", 3)
    assert sum(float(r["value"]) for r in counts) == 3.0
    assert {r["metric_type"] for r in counts} == {"histogram"}
    # Written together with the counts (the stack has shut down: every row is flushed).
    assert len(await _rows(pg_schema_dsn, "agent_duration_seconds_sum", 0)) == len(counts)
    tools = await _rows(pg_schema_dsn, "tool_calls_total", 1)
    assert tools[0]["labels"] == {"tool": "add", "type": "native", "status": "success"}
    assert await _rows(pg_schema_dsn, "http_requests_total", 4)  # the 404 and the three runs


async def test_retention_deletes_old_rows_at_start(tmp_sqlite_url: str) -> None:
    old, recent = str(uuid.uuid4()), str(uuid.uuid4())
    async with open_storage(tmp_sqlite_url) as db:
        for rid, age in ((old, 40), (recent, 2)):
            row = {"id": rid, "metric_name": "x_total", "metric_type": "counter", "value": 1}
            await db.write("metrics", {**row, "timestamp": datetime.utcnow() - timedelta(days=age)})
    stack = _stack(tmp_sqlite_url, interval=60, retention_days=30)
    async with stack:
        pass
    async with open_storage(tmp_sqlite_url) as db:
        assert [r["id"] for r in await db.read("metrics", {"metric_name": "x_total"})] == [recent]


def test_storage_backend_needs_persistence() -> None:
    with pytest.raises(ConfigError, match=r"enterprise\.metrics\.backends\.storage.*persistence"):
        build_stack(endpoint(), enable_security=False, enable_metrics=True, metrics_config={"backends": ["storage"]})
    with pytest.raises(ConfigError, match=r"retention_days"):
        build_stack(
            endpoint(),
            enable_security=False,
            enable_metrics=True,
            metrics_config={"backends": {"storage": {"enabled": True, "retention_days": -1}}},
            enable_persistence=True,
            persistence_config={"backend": "sqlite"},
        )
