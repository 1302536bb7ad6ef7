"""``server.server_timing``: a Server-Timing header with each layer's own time, through the stack."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from tests.asgi_harness import request
from tests.auth.conftest import FAST
from tframex_asgi import build_stack
from tframex_asgi.auth.store import get_identity_store
from tframex_asgi.timing import Probe, ServerTimingMiddleware

ENTRY = re.compile(r"^([a-z_]+);dur=(\d+\.\d{3})$")
RELEASE = asyncio.Event()


async def streaming_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Sends its own Server-Timing entry, then streams: the second chunk waits for the test."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"server-timing", b"db;dur=1.5")]})
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    await RELEASE.wait()
    await send({"type": "http.response.body", "body": b"second", "more_body": False})


def full_stack(server_timing: bool) -> Any:
    return build_stack(
        streaming_app,
        enable_metrics=True,
        enable_persistence=True,
        persistence_config={"connection_string": "memory://"},
        enable_security=True,
        security_config={
            "auth_providers": {"api_key": True, "basic": {"enabled": True, **FAST}},
            "rbac": {"routes": {"GET /stream": "data.read"}},
            "rate_limiting": {"enabled": True, "storage": "memory://", "default": "1000/minute"},
            "audit": "security",
        },
        server_config={"server_timing": server_timing},
    )


def entries(messages: list[dict[str, Any]]) -> list[tuple[str, float]]:
    start = messages[0]
    values = [v.decode() for k, v in start["headers"] if k == b"server-timing"]
    assert values[0] == "db;dur=1.5", values  # the app's own entry is kept
    assert len(values) == 2, values
    found = []
    for part in values[1].split(", "):
        match = ENTRY.match(part)
        assert match, part
        found.append((match.group(1), float(match.group(2))))
    return found


async def test_every_layer_reached_is_timed_and_streaming_is_not_held_back() -> None:
    RELEASE.clear()
    stack = full_stack(True)
    async with stack:
        store = get_identity_store(stack.services)
        user = await store.create_user("tim", password="pw")
        _, key = await store.create_api_key(user["id"])
        messages: list[dict[str, Any]] = []
        first_chunk = asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)
            if message["type"] == "http.response.body":
                first_chunk.set()

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": "/stream", "raw_path": b"/stream", "query_string": b"",
            "root_path": "", "headers": [(b"x-api-key", key.encode())], "client": ("127.0.0.1", 5000),
            "server": ("t", 80), "state": {},
        }  # fmt: skip
        task = asyncio.ensure_future(stack(scope, receive, send))
        # The header and the first chunk arrive while the app still holds its second chunk.
        await asyncio.wait_for(first_chunk.wait(), 5)
        assert messages[0]["type"] == "http.response.start" and messages[0]["status"] == 200
        timed = entries(messages)
        RELEASE.set()
        await asyncio.wait_for(task, 5)
    assert [m.get("body") for m in messages[1:]] == [b"first", b"second"]
    # One entry per layer of the stack, outermost first, then the app.
    assert [name for name, _ in timed] == [*stack.layers, "app"]
    assert {"authentication", "rate_limit", "authorization", "audit", "metrics"} <= set(stack.layers)
    assert all(dur >= 0 for _, dur in timed)


async def test_a_refused_request_times_the_layers_it_reached() -> None:
    stack = full_stack(True)
    async with stack:
        resp = await request(stack, "GET", "/stream", headers={"X-API-Key": "tfx_0123456789ab_wrong"})
    assert resp.status == 401
    names = [part.split(";")[0] for part in resp.headers["server-timing"].split(", ")]
    # Authentication answered: nothing inside it ran, so nothing inside it is listed.
    assert names == list(stack.layers[: stack.layers.index("authentication") + 1])


async def test_off_by_default_adds_no_wrapper_and_no_header() -> None:
    stack = full_stack(False)
    assert not isinstance(stack.app, ServerTimingMiddleware | Probe)
    app: Any = stack.app
    while hasattr(app, "app"):
        assert not isinstance(app, ServerTimingMiddleware | Probe)
        app = app.app
    async with stack:
        resp = await request(stack, "GET", "/stream", headers={"X-API-Key": "tfx_0123456789ab_wrong"})
    assert resp.status == 401 and "server-timing" not in resp.headers


async def test_loads_from_yaml_key() -> None:
    from tframex_asgi.config import loads_config

    cfg = loads_config("enterprise:\n  server:\n    server_timing: true\n")
    assert cfg.server.server_timing is True
