"""Real MCP servers for the tests: the FastMCP script beside this file, run with this Python,
over stdio (a child of the server under test) or streamable HTTP on a random loopback port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

SCRIPT = Path(__file__).with_name("mcp_server.py")


def stdio(**extra: Any) -> dict[str, Any]:
    return {"type": "stdio", "command": sys.executable, "args": [str(SCRIPT)], **extra}


def write_config(directory: Path, servers: dict[str, Any], name: str = "mcp.json") -> Path:
    path = directory / name
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return path


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t", timeout=60)


def wait_until(check: Any, what: str, seconds: float = 60.0) -> None:
    """Poll ``check()`` until true (a deadline for a hang, never a timing assertion)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def http_mcp() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The test server over streamable HTTP on 127.0.0.1: (url, process), stopped afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )

    def listening() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"MCP HTTP server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(listening, "the MCP HTTP server to listen")
        yield f"http://127.0.0.1:{port}/mcp", proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def eventually(check: Any, what: str, seconds: float = 60.0) -> Any:
    """Await ``check()`` until it returns something truthy (a deadline, not a timing assertion)."""
    import asyncio

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
