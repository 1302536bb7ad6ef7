"""Rows built off the request path: the request only queues a capture; order, shutdown, threads,
other loops and failures lose nothing, duplicate nothing and keep one valid chain."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import httpx
import pytest

from tests.audit.conftest import ALICE, FakePrincipal, ListSink, guarded_app
from tframex_asgi.audit.chain import CHAIN_END_ACTION, verify_rows
from tframex_asgi.audit.layer import AuditMiddleware
from tframex_asgi.audit.logger import _DRAIN_BATCH, AuditLogger
from tframex_asgi.config.audit import AuditConfig
from tframex_asgi.context import RequestContextMiddleware


def stack(audit: AuditLogger) -> RequestContextMiddleware:
    return RequestContextMiddleware(AuditMiddleware(guarded_app, audit))


def client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 1234)),  # type: ignore[arg-type]
        base_url="http://test",
    )


async def test_the_request_path_only_queues_a_capture(sink: ListSink, monkeypatch: pytest.MonkeyPatch) -> None:
    audit = AuditLogger(sink, AuditConfig(level="full", hmac_key="k" * 20))
    await audit.start()
    built: list[Any] = []
    real_build = audit._build_request

    def spy(capture: Any) -> None:
        built.append(capture)
        real_build(capture)

    monkeypatch.setattr(audit, "_build_request", spy)
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/items/a",
        "raw_path": b"/items/a",
        "headers": [(b"user-agent", b"pytest")],
        "query_string": b"",
        "client": ("10.1.2.3", 1234),
    }
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    # Called directly (no client in between that could let the loop run): nothing is built until
    # the loop runs its callbacks.
    await stack(audit)(scope, receive, send)
    assert sent[0]["status"] == 200 and sink.rows == [] and built == [] and audit.pending == 1
    await asyncio.sleep(0)  # one loop iteration: the callback builds it
    assert audit.pending == 0 and len(built) == 1
    (row,) = sink.table("audit_logs")
    assert row["action"] == "GET /items/{name}" and row["user_agent"] == "pytest" and row["seq"] == 1
    assert row["ip_address"] == "10.1.2.3" and row["request_id"] == scope["tframex"]["request_id"]


async def test_order_is_record_order_across_requests_and_changes(sink: ListSink) -> None:
    audit = AuditLogger(sink, AuditConfig(level="full"))
    await audit.start()
    async with client(stack(audit)) as c:
        await c.get("/items/a")
        await c.get("/401")
        audit.log_change(principal=ALICE, action="user.update", resource_type="user")  # builds the two first
        await c.get("/items/b")
        audit.log_event(event_type="auth", action="login", status="failure")
        await c.get("/429")
    await audit.aclose()  # builds the rest, then seals the chain
    rows = sink.table("audit_logs")
    assert [r["action"] for r in rows] == [
        "GET /items/{name}",
        "GET /401",
        "user.update",
        "GET /items/{name}",
        "GET /429",
        CHAIN_END_ACTION,
    ]
    assert [r["seq"] for r in rows] == list(range(1, 7))
    assert [r["resource_id"] for r in rows[:2]] == ["/items/a", "/401"]
    events = sink.table("events")
    assert [e["action"] for e in events] == ["invalid_token", "login", "rate_limited"]
    report = verify_rows(rows)
    assert report.ok and report.closed_chains == 1


async def test_shutdown_builds_every_queued_capture_once(sink: ListSink) -> None:
    audit = AuditLogger(sink, AuditConfig(level="full"))
    await audit.start()
    app = stack(audit)
    async with client(app) as c:
        await asyncio.gather(*(c.get(p) for p in ["/items/a", "/401", "/403", "/items/b"] * 25))
    await audit.aclose()
    assert audit.pending == 0 and sink.flushes == 1
    rows = sink.table("audit_logs")
    assert len(rows) == 101 and rows[-1]["action"] == CHAIN_END_ACTION and rows[-1]["new_values"] == {"rows": 101}
    assert len({r["id"] for r in rows}) == 101 and len({r["request_id"] for r in rows[:-1]}) == 100
    assert verify_rows(rows).ok
    # After close, a late request is built at once, in a new chain.
    async with client(app) as c:
        await c.get("/items/late")
    late = sink.table("audit_logs")[-1]
    assert late["resource_id"] == "/items/late" and late["seq"] == 1 and late["chain_id"] != rows[0]["chain_id"]


async def test_the_capture_keeps_the_values_of_its_moment(sink: ListSink) -> None:
    audit = AuditLogger(sink, AuditConfig(level="full"))
    await audit.start()
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/items/a",
        "raw_path": b"/items/a",
        "headers": [(b"user-agent", b"first")],
        "query_string": b"x=1",
        "tframex": {"request_id": "r1", "client_ip": "192.0.2.1", "route": "/items/{name}", "principal": ALICE},
    }

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def ignore(message: Any) -> None:
        return None

    await AuditMiddleware(app, audit)(scope, None, ignore)  # type: ignore[arg-type]
    # Whatever happens to the scope afterwards does not change the record.
    scope["headers"].clear()
    scope["tframex"].update(request_id="r2", client_ip="192.0.2.2", route="/other", principal=None)
    scope.update(method="POST", path="/x", query_string=b"")
    audit.drain()
    (row,) = sink.table("audit_logs")
    assert (row["action"], row["user_agent"], row["request_id"], row["ip_address"]) == (
        "GET /items/{name}",
        "first",
        "r1",
        "192.0.2.1",
    )
    assert row["new_values"]["query"] == "x=1" and row["user_id"] == ALICE.id


async def test_a_record_that_cannot_be_built_leaves_no_gap(sink: ListSink, caplog: pytest.LogCaptureFixture) -> None:
    class Weird:
        is_authenticated = True

        @property
        def username(self) -> str:
            raise RuntimeError("boom")

    audit = AuditLogger(sink, AuditConfig(level="full"))
    await audit.start()
    base = {"type": "http", "method": "GET", "headers": [], "query_string": b""}
    audit.log_request({**base, "path": "/a", "tframex": {"principal": ALICE}}, status=200, duration_ms=1)
    audit.log_request({**base, "path": "/b", "tframex": {"principal": Weird()}}, status=200, duration_ms=1)
    audit.log_request({**base, "path": "/c", "tframex": {}}, status=401, duration_ms=1)
    await asyncio.sleep(0)
    rows = sink.table("audit_logs")
    assert [r["resource_id"] for r in rows] == ["/a", "/c"] and [r["seq"] for r in rows] == [1, 2]
    assert verify_rows(rows).ok
    assert "could not build the audit record of a request" in caplog.text


async def test_records_from_a_thread_or_another_loop_are_built_at_once(sink: ListSink) -> None:
    audit = AuditLogger(sink, AuditConfig(level="full"))
    await audit.start()
    scope = {"type": "http", "method": "GET", "path": "/t", "headers": [], "query_string": b"", "tframex": {}}

    def work() -> None:
        for _ in range(50):
            audit.log_request(scope, status=200, duration_ms=0)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sink.table("audit_logs")) == 200  # no loop of theirs to build them later

    def other_loop() -> None:
        async def main() -> None:
            audit.log_request(scope, status=200, duration_ms=0)

        asyncio.run(main())

    thread = threading.Thread(target=other_loop)
    thread.start()
    thread.join()
    rows = sink.table("audit_logs")
    assert len(rows) == 201 and verify_rows(rows).ok


async def test_a_long_backlog_is_built_in_slices(sink: ListSink) -> None:
    audit = AuditLogger(sink, AuditConfig(level="full"))
    await audit.start()
    scope = {"type": "http", "method": "GET", "path": "/b", "headers": [], "query_string": b"", "tframex": {}}
    for _ in range(1500):
        audit.log_request(scope, status=200, duration_ms=0)
    assert audit.pending == 1500
    await asyncio.sleep(0)
    assert 0 < audit.pending < 1500  # the loop got control back between slices
    for _ in range(1500 // _DRAIN_BATCH + 1):
        await asyncio.sleep(0)
    assert audit.pending == 0 and len(sink.table("audit_logs")) == 1500


async def test_security_level_skips_successes_without_capturing(sink: ListSink) -> None:
    audit = AuditLogger(sink, AuditConfig(level="security"))
    await audit.start()
    calls: list[Any] = []
    real_record = audit.record

    def spy(capture: Any) -> None:
        calls.append(capture)
        real_record(capture)

    audit.record = spy  # type: ignore[method-assign]
    async with client(stack(audit)) as c:
        for _ in range(5):
            await c.get("/items/a")
        assert calls == []
        await c.get("/403")
    await audit.flush()
    assert len(calls) == 1 and [r["reason"] for r in sink.table("audit_logs")] == ["forbidden"]


def test_ids_are_time_ordered_version_7_uuids(sink: ListSink, monkeypatch: pytest.MonkeyPatch) -> None:
    from tframex_asgi import ids as ids_module

    # An injected clock that moves on by 0.4 ms per id (the wall clock may step back under NTP).
    clock = iter(range(1_700_000_000_000_000_000, 1 << 64, 400_000))
    monkeypatch.setattr(ids_module, "_time_ns", lambda: next(clock))
    audit = AuditLogger(sink, AuditConfig(level="full"))
    for i in range(600):  # more than one batch of ids
        audit.log_change(principal=FakePrincipal(str(uuid.uuid4()), f"u{i}"), action="a", resource_type="t")
    ids = [r["id"] for r in sink.table("audit_logs")]
    assert len(set(ids)) == 600
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
    # Time-ordered (their index grows at its end): never older than the row before them.
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)
    assert ids[0][:13] != ids[-1][:13]


async def test_the_stack_builds_off_the_request_path_and_flushes_at_shutdown() -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from tframex_asgi.audit.export import verify_storage
    from tframex_asgi.stack import build_stack

    app = Starlette(routes=[Route("/open", lambda r: JSONResponse({}))])
    stack = build_stack(
        app,
        {
            "persistence": {"enabled": True, "connection_string": "memory://"},
            "security": {"auth_providers": ["api_key"], "public_paths": ["/open"], "audit": {"level": "full"}},
        },
    )
    async with stack:
        audit = stack.services.audit
        transport = httpx.ASGITransport(app=stack)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            ids = [(await c.get("/open")).headers["x-request-id"] for _ in range(30)]
            ids += [(await c.get("/closed")).headers["x-request-id"] for _ in range(10)]
        storage = stack.services.storage
    assert audit.pending == 0
    rows = await storage.read("audit_logs")
    assert sorted(r["request_id"] for r in rows if r["action"] != CHAIN_END_ACTION) == sorted(ids)
    report = await verify_storage(storage)
    assert report.ok and (report.rows, report.closed_chains) == (41, 1)
    assert await storage.count("events") == 10


def test_row_times_are_the_clock_s_seconds_as_naive_utc_to_the_microsecond() -> None:
    import random

    from tframex_asgi.audit.rows import utc_datetime
    from tframex_asgi.util import naive_utc

    rng = random.Random(7)
    moments = [0.0, 0.5, 1_796_600_000.123456, 1_796_600_000.9999995, *(rng.uniform(0, 4e9) for _ in range(20_000))]
    for seconds in moments:
        assert utc_datetime(seconds) == naive_utc(seconds), seconds
