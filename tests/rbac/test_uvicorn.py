"""Path tricks sent as raw bytes to a real uvicorn (which percent-decodes scope["path"])."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from tests.rbac.conftest import SECURE
from tframex_asgi import build_stack
from tframex_asgi.admin.bootstrap import bootstrap_admin
from tframex_asgi.admin.service import get_admin
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint

PARSERS = ["h11"] + (["httptools"] if importlib.util.find_spec("httptools") else [])


@pytest.fixture(params=PARSERS)
async def server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[int, dict[str, str]]]:
    stack = build_stack(TFrameXEndpoint(build_demo_app()), **SECURE)
    config = uvicorn.Config(stack, host="127.0.0.1", port=0, lifespan="on", log_level="warning", http=request.param)
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        assert not task.done(), "uvicorn failed to start"
        await asyncio.sleep(0.01)
    port = srv.servers[0].sockets[0].getsockname()[1]
    created = await bootstrap_admin(stack.services)
    assert created is not None
    admin = get_admin(stack.services)
    user = await admin.create_user("plain")
    keys = {"admin": created[1], "plain": (await admin.create_key(str(user["id"])))[1]}
    yield port, keys
    srv.should_exit = True
    await task


async def raw_get(port: int, target: str, key: str, method: str = "GET") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {target} HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data


@pytest.mark.parametrize(
    "target",
    [
        "/agents/%2e%2e/admin/users",
        "/agents/%2E%2E/admin/users",
        "/admin%2Fusers",
        "/admin%2fusers",
        "//admin/users",
        "/agents/..;/admin/users",
        "/agents/../admin/users",
        "/conversations/%2e%2e%2fadmin%2fusers",
        "/agents%252f..%252fadmin",
    ],
)
async def test_tricks_are_refused_by_a_real_server(server: Any, target: str) -> None:
    port, keys = server
    status, body = await raw_get(port, target, keys["plain"])
    assert status == 400 and b'"bad_path"' in body, body


async def test_normal_and_variant_paths_on_a_real_server(server: Any) -> None:
    port, keys = server
    assert (await raw_get(port, "/healthz", "x"))[0] == 200
    assert (await raw_get(port, "/admin/users", keys["admin"]))[0] == 200
    assert (await raw_get(port, "/admin/users", keys["plain"]))[0] == 403
    assert (await raw_get(port, "/ADMIN/users", keys["plain"]))[0] == 403
    assert (await raw_get(port, "/admin/users/", keys["plain"]))[0] == 403
    assert (await raw_get(port, "/admin/users/", keys["admin"]))[0] == 307  # Starlette's slash redirect
    assert (await raw_get(port, "/admin/users?x=..%2f", keys["admin"]))[0] == 200  # the query is not the path
    assert (await raw_get(port, "/admin/users", keys["admin"], method="OPTIONS"))[0] == 403
    assert (await raw_get(port, "/agents", keys["plain"], method="HEAD"))[0] == 403
