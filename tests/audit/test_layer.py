"""The audit middleware on a bare ASGI app: one record per request, reasons, redaction, no body buffering."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.asgi_harness import request as raw_request
from tests.audit.conftest import ALICE, SECRETS, ListSink, guarded_app
from tframex_asgi.audit.layer import AuditMiddleware
from tframex_asgi.audit.logger import AuditLogger
from tframex_asgi.config.audit import AuditConfig
from tframex_asgi.context import RequestContextMiddleware


def stack(sink: ListSink, level: str = "full", **cfg: object) -> RequestContextMiddleware:
    audit = AuditLogger(sink, AuditConfig(level=level, **cfg))  # type: ignore[arg-type]
    return RequestContextMiddleware(AuditMiddleware(guarded_app, audit))


def client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 1234)),  # type: ignore[arg-type]
        base_url="http://test",
    )


async def test_full_level_records_every_request_once(sink: ListSink) -> None:
    async with client(stack(sink)) as c:
        for path in ("/items/a", "/items/b", "/401", "/403", "/413", "/429", "/app403", "/nowhere"):
            await c.get(path, headers={"user-agent": "pytest"})
    rows = sink.table("audit_logs")
    assert len(rows) == 8
    by_path = {r["resource_id"]: r for r in rows}
    ok = by_path["/items/a"]
    assert ok["action"] == "GET /items/{name}" and ok["status"] == "success" and ok["reason"] is None
    assert ok["user_id"] == ALICE.id and ok["new_values"]["actor"]["username"] == "alice"
    assert ok["ip_address"] == "10.1.2.3" and ok["user_agent"] == "pytest" and ok["request_id"]
    assert ok["new_values"]["status_code"] == 200 and ok["new_values"]["method"] == "GET"
    expected = {
        "/401": "invalid_token",
        "/403": "forbidden",
        "/413": "payload_too_large",
        "/429": "rate_limited",
        "/app403": "forbidden",
    }
    for path, reason in expected.items():
        assert (by_path[path]["status"], by_path[path]["reason"]) == ("denied", reason)
        assert by_path[path]["user_id"] == (ALICE.id if path == "/app403" else None)
    assert [r["seq"] for r in rows] == list(range(1, 9))


@pytest.mark.parametrize("path", ["/401", "/403", "/413", "/429"])
async def test_security_level_records_each_rejection_exactly_once(sink: ListSink, path: str) -> None:
    async with client(stack(sink, "security")) as c:
        await c.get("/items/x")
        response = await c.get(path)
        await c.get("/items/y")
    rows = sink.table("audit_logs")
    assert [r["new_values"]["status_code"] for r in rows] == [response.status_code]
    events = sink.table("events")
    assert len(events) == 1 and events[0]["event_type"] == "security" and events[0]["status"] == "denied"
    assert events[0]["details"]["request_id"] == rows[0]["request_id"]


async def test_no_secret_reaches_a_row_and_control_characters_are_escaped(sink: ListSink) -> None:
    basic = base64.b64encode(b"alice:basic-cred-value").decode()
    headers = {
        "authorization": "Bearer bearer-token-value",
        "cookie": "session=session-cookie-value",
        "x-api-key": "s3cr3t-api-key-value",
        "user-agent": "evil\r\nX-Injected: 1\x00",
    }
    async with client(stack(sink, redact_fields=("ssn",))) as c:
        await c.post(
            "/items/a?token=query-token-value&page=1",
            headers=headers,
            content=json.dumps({"password": "hunter2-password", "ssn": "1"}),
        )
        await c.get("/401", headers={"authorization": f"Basic {basic}", "user-agent": "Bearer bearer-token-value"})
    text = sink.dump()
    for secret in (*SECRETS, basic):
        assert secret not in text
    row = sink.table("audit_logs")[0]
    assert row["user_agent"] == "evil\\r\\nX-Injected: 1\\x00"
    assert "page=1" in row["new_values"]["query"]
    assert all("\r" not in json.dumps(r, default=str) and "\n" not in json.dumps(r, default=str) for _, r in sink.rows)


async def test_body_and_stream_pass_through_untouched(sink: ListSink) -> None:
    app = stack(sink)
    response = await raw_request(app, "POST", "/items/a", body=b"x" * 70_000)
    assert response.status == 200 and response.json() == {"ok": True, "echo_len": 70_000}
    assert len(response.chunks) == 2  # not re-buffered into one body
    assert len(sink.table("audit_logs")) == 1


async def test_unhandled_error_is_recorded_as_500_and_propagates(sink: ListSink) -> None:
    async with client(stack(sink)) as c:
        response = await c.get("/boom")  # the context layer turns it into a JSON 500
    assert response.status_code == 500
    row = sink.table("audit_logs")[0]
    assert (row["status"], row["reason"], row["new_values"]["status_code"]) == ("error", "internal_error", 500)


async def test_lifespan_and_websocket_pass_through(sink: ListSink) -> None:
    seen = []

    async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        seen.append(scope["type"])

    mw = AuditMiddleware(app, AuditLogger(sink, AuditConfig(level="full")))  # type: ignore[arg-type]
    await mw({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    await mw({"type": "websocket", "path": "/ws", "headers": []}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan", "websocket"] and sink.rows == []


async def test_concurrent_requests_do_not_share_state(sink: ListSink) -> None:
    import asyncio

    app = stack(sink)
    async with client(app) as c:
        responses = await asyncio.gather(*(c.get(p) for p in ["/items/a", "/401", "/429", "/items/b"] * 10))
    rows = sink.table("audit_logs")
    assert len(rows) == len(responses) == 40
    for row in rows:
        code = row["new_values"]["status_code"]
        assert {200: None, 401: "invalid_token", 429: "rate_limited"}[code] == row["reason"]


async def test_a_cancelled_request_is_recorded_once(sink: ListSink) -> None:
    import asyncio

    entered = asyncio.Event()

    async def hang(scope: Any, receive: Any, send: Any) -> None:
        entered.set()
        await asyncio.Event().wait()

    mw = AuditMiddleware(hang, AuditLogger(sink, AuditConfig(level="full")))
    scope = {"type": "http", "method": "GET", "path": "/hang", "headers": [], "query_string": b"", "tframex": {}}
    task = asyncio.ensure_future(mw(scope, None, None))  # type: ignore[arg-type]
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (row,) = sink.table("audit_logs")
    assert (row["new_values"]["status_code"], row["reason"], row["status"]) == (499, "cancelled", "failure")


async def test_without_hash_chain_rows_are_plain(sink: ListSink) -> None:
    async with client(stack(sink, hash_chain=False)) as c:
        await c.get("/401")
    (row,) = sink.table("audit_logs")
    assert "row_hash" not in row and "seq" not in row


def test_config_is_checked_and_never_prints_the_key() -> None:
    from tframex_asgi.config import EnterpriseConfig
    from tframex_asgi.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        EnterpriseConfig.from_kwargs(enable_security=True, security_config={"audit": {"hmac_key": "short"}})
    assert err.value.path == "enterprise.security.audit.hmac_key" or err.value.path.endswith("audit.hmac_key")
    cfg = AuditConfig(level="full", hmac_key="a-very-secret-key-123")
    assert "a-very-secret-key-123" not in repr(cfg)


async def test_a_stream_cut_after_the_status_keeps_the_status_and_says_why(sink: ListSink) -> None:
    import asyncio

    started = asyncio.Event()

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        started.set()
        await asyncio.Event().wait()

    async def ignore(message: Any) -> None:
        return None

    mw = AuditMiddleware(stream, AuditLogger(sink, AuditConfig(level="full")))
    scope = {"type": "http", "method": "GET", "path": "/sse", "headers": [], "query_string": b"", "tframex": {}}
    task = asyncio.ensure_future(mw(scope, None, ignore))  # type: ignore[arg-type]
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (row,) = sink.table("audit_logs")
    assert (row["new_values"]["status_code"], row["reason"], row["status"]) == (200, "cancelled", "success")
