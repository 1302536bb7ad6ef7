"""A streamable-HTTP MCP server on loopback (its own process on a random port): its tools are
listed and called like the stdio ones, a failing tool is a 422, and when the server process dies
its tools answer 503 within the call timeout and /readyz reports it."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
from tframex import TFrameXApp

from tests.conftest import free_port
from tests.mcp.conftest import client, eventually, write_config
from tframex_asgi.endpoint import create_app


async def test_streamable_http_server(
    tmp_path: Path, http_mcp: tuple[str, subprocess.Popen[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    url, proc = http_mcp
    url += "?token=tok-secret"  # a credential in the URL: never logged
    config = write_config(tmp_path, {"web": {"type": "streamable-http", "url": url, "tool_call_timeout": 5}})
    stack = create_app(TFrameXApp(mcp_config_file=str(config)), enable_security=False, enable_metrics=True)
    caplog.set_level(logging.DEBUG)
    async with stack, client(stack) as c:
        ready = await c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["mcp"]["web"]["state"] == "up"
        tools = {t["name"]: t for t in (await c.get("/tools")).json()["tools"]}
        assert tools["web__add"]["parameters"]["required"] == ["a", "b"] and tools["web__add"]["type"] == "mcp"
        ok = await c.post("/tools/web__add/call", json={"arguments": {"a": 40, "b": 2}})
        assert ok.status_code == 200 and ok.json()["result"] == "42"
        failed = await c.post("/tools/web__fail/call", json={"arguments": {"message": "http boom"}})
        assert failed.status_code == 422 and "http boom" in failed.json()["error"]["message"]

        proc.kill()
        proc.wait()
        after = await c.post("/tools/web__add/call", json={"arguments": {"a": 1, "b": 1}})
        assert after.status_code == 503, after.text
        assert after.json()["error"]["code"] in ("mcp_unavailable", "mcp_timeout")

        async def reported() -> bool:
            r = await c.get("/readyz")
            return r.status_code == 503 and r.json()["mcp"]["web"]["state"] == "down"

        await eventually(reported, "/readyz to report the dead HTTP server")
        text = (await c.get("/metrics")).text
    assert 'tframex_mcp_server_up{server="web"} 0.0' in text
    assert 'tframex_mcp_tool_calls_total{server="web",status="error",tool="fail"} 1.0' in text
    assert "HTTP Request: POST" in caplog.text and "tok-secret" not in caplog.text


async def test_unreachable_server_leaks_no_url_credentials(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    url = f"http://bob:pw-secret@127.0.0.1:{port}/mcp?token=tok-secret"
    headers = {"Authorization": "Bearer header-secret"}
    config = write_config(tmp_path, {"web": {"type": "streamable-http", "url": url, "headers": headers}})
    stack = create_app(TFrameXApp(mcp_config_file=str(config)), enable_security=False)
    with caplog.at_level(logging.DEBUG):
        async with stack, client(stack) as c:
            ready = await c.get("/readyz")
            assert ready.status_code == 503 and ready.json()["mcp"]["web"]["state"] == "down"
            call = await c.post("/tools/web__add/call", json={"arguments": {"a": 1, "b": 1}})
            assert call.status_code == 503
            bodies = ready.text + call.text
    assert "MCP server 'web' is unavailable" in caplog.text
    for secret in ("pw-secret", "tok-secret", "header-secret"):
        assert secret not in caplog.text and secret not in bodies
