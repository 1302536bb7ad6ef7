"""A PostgreSQL outage as clients see it, against a cluster the test owns and stops.

While the server is down every request that needs the database gets 503 ``storage_unavailable``
with a generic message (never a 500, never the driver's text with the host and port); once it is
back the next request succeeds, and the write queue leaves its spill file within a fraction of a
second (the retry interval is capped at 0.25 s), with no row lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.own_services import Cluster
from tframex_asgi import build_stack
from tframex_asgi.admin.bootstrap import bootstrap_admin
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint
from tframex_asgi.storage import open_storage, unavailable
from tframex_asgi.storage.unavailable import MESSAGE


async def burst(c: httpx.AsyncClient, n: int) -> list[httpx.Response]:
    """Reads and writes at once, so pooled connections are busy when the server goes away."""
    calls: list[Any] = []
    for i in range(n):
        if i % 3 == 0:
            calls.append(c.get("/conversations"))
        elif i % 3 == 1:
            calls.append(c.post("/agents/assistant/run", json={"input": f"hello {i}"}))
        else:  # needs no database on the request path: its records go through the write queue
            calls.append(c.post("/flows/echo_then_shout/run", json={"input": f"hi {i}"}))
    return list(await asyncio.gather(*calls))


async def test_outage_is_a_generic_503_and_service_returns_at_once(
    own_postgres: Cluster, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The warning is throttled per process: an outage an earlier test caused must not swallow this one's.
    monkeypatch.setattr(unavailable, "_last_warning", {})
    stack = build_stack(
        TFrameXEndpoint(build_demo_app()),
        # Anonymous runs (no RBAC), plus an admin key for GET /audit, which reads the database.
        enable_security=True,
        security_config={"require_auth": False, "rbac": {"enabled": False}, "audit": {"level": "full"}},
        enable_persistence=True,
        persistence_config={
            "connection_string": own_postgres.dsn,
            "pool_max_size": 8,
            "queue": {"spill_path": str(tmp_path / "spill.jsonl"), "flush_interval": 0.01},
        },
    )
    port = str(own_postgres.port)
    caplog.set_level(logging.WARNING, logger="tframex_asgi")
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        created = await bootstrap_admin(stack.services)
        assert created is not None
        admin = {"X-API-Key": created[1]}
        assert (await c.get("/audit", headers=admin)).status_code == 200  # the key is verified and cached
        ok = await burst(c, 16)  # fills the pool with live connections
        assert {r.status_code for r in ok} == {200}

        # Requests in flight while the server shuts down, then requests against a dead server.
        during = asyncio.create_task(burst(c, 16))
        await asyncio.to_thread(own_postgres.stop, "immediate")
        down = [*await during, *await burst(c, 16), await c.get("/audit", headers=admin)]
        assert down[-1].status_code == 503, down[-1].text  # was a 500: the route let the error through
        failed = [r for r in down if r.status_code != 200]
        assert failed, "the outage never reached a request: the test tested nothing"
        for resp in failed:
            assert resp.status_code == 503, (resp.status_code, resp.text)
            assert resp.json() == {"error": {"code": "storage_unavailable", "message": MESSAGE}}
            assert port not in resp.text and "127.0.0.1" not in resp.text
        # The driver's detail is in the log, for the operator.
        logged = [r.getMessage() for r in caplog.records if r.name == "tframex_asgi.storage"]
        assert any(m.startswith("PostgreSQL unavailable: ") and len(m) > 30 for m in logged), logged

        await asyncio.to_thread(own_postgres.start)
        back = time.monotonic()
        # Every pooled connection died with the server; the first failure expired them all, so
        # the very first requests after the restart succeed.
        after = await burst(c, 16)
        assert [r.status_code for r in after] == [200] * 16, [r.text for r in after if r.status_code != 200]
        writer = stack.services.writer
        while writer._spilling and time.monotonic() - back < 30:
            await asyncio.sleep(0.01)
        assert not writer._spilling
        assert writer.spilled_total > 0 and writer.dropped_total == 0 and writer.rejected_total == 0
        done = [r.json() for r in [*ok, *down, *after] if r.status_code == 200 and "/flows/" in r.url.path]
    async with open_storage(own_postgres.dsn) as db:
        # Every flow answered 200, during the outage too, left its execution row (spill replayed).
        stored = {r["id"] for r in await db.read("flow_executions")}
        assert {d["execution_id"] for d in done} <= stored and len(done) > 16
        # And every request answered during the outage has its audit row (spilled, replayed).
        audited = {r["request_id"] for r in await db.read("audit_logs")}
        assert {r.headers["x-request-id"] for r in down} <= audited


def test_every_driver_failure_maps_to_the_generic_503() -> None:
    # asyncpg's InternalClientError ("cannot switch to state ...", raised when a connection dies
    # mid-protocol) is not an InterfaceError and used to escape as a 500.
    import asyncpg  # type: ignore[import-untyped]

    from tframex_asgi.errors import StorageError
    from tframex_asgi.storage.postgres import DRIVER_ERRORS, translate

    for exc in [
        asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
        ConnectionRefusedError(111, "Connect call failed ('10.0.0.5', 5432)"),
        TimeoutError(),
    ]:
        assert isinstance(exc, DRIVER_ERRORS)
        error = translate(exc)
        assert isinstance(error, StorageError) and error.status == 503
        assert error.code == "storage_unavailable" and error.message == MESSAGE


async def test_no_driver_error_escapes_during_restarts(own_postgres: Cluster) -> None:
    """Many queries in flight while the server stops and starts: every failure is our StorageError
    (asyncpg raises InternalClientError "cannot switch to state ..." on some of them)."""
    from tframex_asgi.errors import StorageError

    store = open_storage(own_postgres.dsn)
    await store.connect()
    causes: dict[str, int] = {}
    escaped: list[str] = []
    stop = asyncio.Event()

    async def worker() -> None:
        while not stop.is_set():
            try:
                await store.count("flow_executions")
                await store.write("flow_executions", {"flow_name": "x"})
            except StorageError as exc:
                name = type(exc.__cause__).__name__
                causes[name] = causes.get(name, 0) + 1
            except Exception as exc:
                escaped.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(worker()) for _ in range(30)]
    try:
        for mode in ("fast", "immediate"):
            await asyncio.sleep(0.5)
            await asyncio.to_thread(own_postgres.stop, mode)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(own_postgres.start)
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await store.close()
    assert causes, "no query failed: the restarts never hit the load"
    assert escaped == [], escaped[:5]
