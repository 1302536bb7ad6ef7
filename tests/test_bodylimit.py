"""Request body limit: 413 before reading a declared-too-large body, and as soon as a streamed
body crosses the limit, without reading the rest."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tframex_asgi.bodylimit import BodyLimitMiddleware
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.context import get_state
from tframex_asgi.http import send_json
from tframex_asgi.layers import build_layer
from tframex_asgi.services import Services
from tframex_asgi.types import Receive, Scope, Send


class Client:
    """Feeds the body in chunks and records every receive() and every message sent."""

    def __init__(self, chunks: list[bytes], headers: dict[str, str] | None = None) -> None:
        self.chunks = chunks
        self.reads = 0
        self.sent: list[dict[str, Any]] = []
        self.scope: dict[str, Any] = {
            "type": "http",
            "method": "POST",
            "path": "/agents/a/run",
            "raw_path": b"/agents/a/run",
            "query_string": b"",
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            "client": ("127.0.0.1", 5000),
        }

    async def receive(self) -> dict[str, Any]:
        if self.reads >= len(self.chunks):
            return {"type": "http.disconnect"}
        self.reads += 1
        return {"type": "http.request", "body": self.chunks[self.reads - 1], "more_body": self.reads < len(self.chunks)}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(next(m["status"] for m in self.sent if m["type"] == "http.response.start"))

    @property
    def body(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body"))

    async def run(self, app: Any) -> None:
        await app(self.scope, self.receive, self.send)


async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, answers with its length."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send_json(send, 200, json.dumps({"size": size}).encode())


async def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    called = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(True)

    client = Client([b"x" * 200], {"content-length": "200"})
    await client.run(BodyLimitMiddleware(app, 100))
    assert client.status == 413 and client.reads == 0 and not called
    assert client.body == {"error": {"code": "payload_too_large", "message": "request body larger than 100 bytes"}}
    assert (b"connection", b"close") in client.sent[0]["headers"]
    assert client.scope["tframex"]["audit_reason"] == "payload_too_large"


@pytest.mark.parametrize("declared", [True, False])
async def test_bodies_up_to_the_limit_pass(declared: bool) -> None:
    chunks = [b"a" * 40, b"b" * 40, b"c" * 20]
    client = Client(chunks, {"content-length": "100"} if declared else {"transfer-encoding": "chunked"})
    await client.run(BodyLimitMiddleware(echo_length, 100))
    assert client.status == 200 and client.body == {"size": 100}
    assert "tframex" not in client.scope or "audit_reason" not in client.scope["tframex"]


async def test_chunked_body_stops_at_the_chunk_that_crosses_the_limit() -> None:
    client = Client([b"x" * 100] * 10, {"transfer-encoding": "chunked"})
    await client.run(BodyLimitMiddleware(echo_length, 250))
    assert client.status == 413
    assert client.reads == 3  # the other seven chunks are never read
    assert [m["type"] for m in client.sent] == ["http.response.start", "http.response.body"]
    assert client.scope["tframex"]["audit_reason"] == "payload_too_large"


async def test_lying_content_length_is_still_counted() -> None:
    client = Client([b"x" * 100] * 3, {"content-length": "50"})
    await client.run(BodyLimitMiddleware(echo_length, 120))
    assert client.status == 413 and client.reads == 2


async def test_an_app_that_swallows_the_error_cannot_answer_again() -> None:
    seen: list[Any] = []

    async def stubborn(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            while (await receive()).get("more_body"):
                pass
        except Exception as exc:
            seen.append(type(exc).__name__)
            seen.append((await receive())["type"])
            await send_json(send, 500, b'{"oops": true}')

    client = Client([b"x" * 100] * 5)
    await client.run(BodyLimitMiddleware(stubborn, 150))
    assert seen == ["PayloadTooLarge", "http.disconnect"]
    assert client.status == 413 and len(client.sent) == 2


async def test_starlette_request_body() -> None:
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = await Request(scope, receive).body()
        await JSONResponse({"size": len(body)})(scope, receive, send)

    small = Client([b"x" * 10] * 3)
    await small.run(BodyLimitMiddleware(app, 64))
    assert small.status == 200 and small.body == {"size": 30}
    big = Client([b"x" * 10] * 30)
    await big.run(BodyLimitMiddleware(app, 64))
    assert big.status == 413 and big.reads == 7


@pytest.mark.parametrize("value", ["abc", "-1", "1e3"])
async def test_malformed_content_length_is_400(value: str) -> None:
    client = Client([b""], {"content-length": value})
    await client.run(BodyLimitMiddleware(echo_length, 100))
    assert client.status == 400 and client.reads == 0


async def test_conflicting_content_lengths_are_400() -> None:
    client = Client([b"x" * 10])
    client.scope["headers"] = [(b"content-length", b"10"), (b"content-length", b"5")]
    await client.run(BodyLimitMiddleware(echo_length, 100))
    assert client.status == 400


async def test_other_scopes_pass_through() -> None:
    called = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope["type"])

    limited = BodyLimitMiddleware(app, 1)
    await limited({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    await limited({"type": "websocket", "headers": [(b"content-length", b"99")]}, None, None)  # type: ignore[arg-type]
    assert called == ["lifespan", "websocket"]


async def test_build_layer_reads_max_body_bytes() -> None:
    svc = Services(EnterpriseConfig.from_mapping({"security": {"max_body_bytes": 16}}))
    layer = build_layer("body_limit", echo_length, svc)
    assert isinstance(layer, BodyLimitMiddleware) and layer.limit == 16
    client = Client([b"x" * 17], {"content-length": "17"})
    await client.run(layer)
    assert client.status == 413
    get_state(client.scope)  # state exists for outer layers (audit, metrics)


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BodyLimitMiddleware(echo_length, 0)


async def test_http1_request_within_its_declared_framing_gets_the_servers_receive() -> None:
    """HTTP/1.x without Transfer-Encoding: the server delivers exactly Content-Length bytes (none
    without it), so nothing needs counting and the app is handed the server's own receive."""
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(receive)
        await send_json(send, 200, b"{}")

    for headers in ({}, {"content-length": "100"}):
        client = Client([b"x" * 100], headers)
        client.scope["http_version"] = "1.1"
        await client.run(BodyLimitMiddleware(app, 120))
        assert client.status == 200
        assert seen[-1] == client.receive  # not wrapped


@pytest.mark.parametrize(
    ("version", "headers"),
    [("1.1", {"transfer-encoding": "chunked"}), ("2", {}), ("2", {"content-length": "50"}), ("3", {})],
)
async def test_chunked_and_http2_bodies_are_still_counted(version: str, headers: dict[str, str]) -> None:
    client = Client([b"x" * 100] * 3, headers)
    client.scope["http_version"] = version
    await client.run(BodyLimitMiddleware(echo_length, 120))
    assert client.status == 413 and client.reads == 2


async def test_http1_declared_length_over_the_limit_is_still_refused() -> None:
    client = Client([b"x" * 100] * 3, {"content-length": "300"})
    client.scope["http_version"] = "1.1"
    await client.run(BodyLimitMiddleware(echo_length, 120))
    assert client.status == 413 and client.reads == 0
