"""A raw ASGI harness: drive lifespan, and see response messages as the app sends them
(httpx.ASGITransport buffers the whole response, so it cannot show streaming)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


class Lifespan:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.state: dict[str, Any] = {}

    async def startup(self) -> dict[str, Any]:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self.task = asyncio.ensure_future(self.app(scope, self.to_app.get, self.from_app.put))
        await self.to_app.put({"type": "lifespan.startup"})
        return await asyncio.wait_for(self.from_app.get(), 10)

    async def shutdown(self) -> dict[str, Any]:
        await self.to_app.put({"type": "lifespan.shutdown"})
        message = await asyncio.wait_for(self.from_app.get(), 10)
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)
        return message


@dataclass
class StreamedResponse:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    # (arrival time, body bytes) per http.response.body message
    chunks: list[tuple[float, bytes]] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(c for _, c in self.chunks)

    def json(self) -> Any:
        return json.loads(self.body)


def http_scope(
    method: str, path: str, headers: dict[str, str] | None = None, client: str = "127.0.0.1"
) -> dict[str, Any]:
    raw_path, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": (client, 50000),
        "server": ("testserver", 80),
        "state": {},
    }


async def request(
    app: Any, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, client: str = "127.0.0.1"
) -> StreamedResponse:
    """Run one request through ``app`` and record each body message with its arrival time."""
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    hdrs = dict(headers or {})
    if raw:
        hdrs.setdefault("content-type", "application/json")
        hdrs.setdefault("content-length", str(len(raw)))
    sent = False
    done = asyncio.Event()
    out = StreamedResponse()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out.status = message["status"]
            out.headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            out.chunks.append((time.monotonic(), message.get("body", b"")))
            if not message.get("more_body", False):
                done.set()

    await app(http_scope(method, path, hdrs, client), receive, send)
    done.set()
    return out


async def sse_events(body: bytes) -> AsyncIterator[tuple[str | None, str]]:
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        event = None
        data = []
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        yield event, "\n".join(data)
