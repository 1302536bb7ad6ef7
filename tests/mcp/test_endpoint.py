"""MCP tools through the whole stack, in process, with real stdio FastMCP servers: listed and
called like native tools, recorded with tool_type='mcp', measured per server, a crashing server
restarted, a dead one reported by /readyz, and calls bounded (503, never a hang)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from tframex import TFrameXApp

from tests.asgi_harness import Lifespan, request
from tests.mcp.conftest import client, eventually, stdio, write_config
from tframex_asgi.endpoint import TFrameXEndpoint, create_app
from tframex_asgi.llm.offline import OfflineLLM
from tframex_asgi.storage import open_storage


def build_app(config: Path) -> TFrameXApp:
    app = TFrameXApp(default_llm=OfflineLLM(), mcp_config_file=str(config))

    @app.agent(name="calc", description="uses MCP tools", mcp_tools_from_servers=["math"])
    async def calc() -> None: ...

    @app.agent(name="plain", description="no MCP tools")
    async def plain() -> None: ...

    @app.tool(description="A native tool")
    async def native_echo(text: str) -> str:
        return text

    return app


async def test_tools_listed_called_and_recorded_like_native_tools(tmp_path: Path, tmp_sqlite_url: str) -> None:
    config = write_config(tmp_path, {"math": stdio()})
    stack = create_app(
        build_app(config),
        enable_security=False,
        enable_persistence=True,
        persistence_config={"connection_string": tmp_sqlite_url},
    )
    async with stack, client(stack) as c:
        tools = {t["name"]: t for t in (await c.get("/tools")).json()["tools"]}
        assert "native_echo" in tools
        add = tools["math__add"]
        assert add["type"] == "mcp" and add["server"] == "math" and add["available"] is True
        assert add["description"] == "Add two integers."
        assert add["parameters"]["required"] == ["a", "b"]
        assert add["parameters"]["properties"]["a"]["type"] == "integer"

        agents = {a["name"]: a for a in (await c.get("/agents")).json()["agents"]}
        assert {"math__add", "math__fail", "math__env"} <= set(agents["calc"]["tools"])
        assert not any("__" in t for t in agents["plain"]["tools"])

        ok = await c.post("/tools/math__add/call", json={"arguments": {"a": 2, "b": 3}})
        assert ok.status_code == 200 and ok.json() == {"tool": "math__add", "result": "5"}
        failed = await c.post("/tools/math__fail/call", json={"arguments": {"message": "boom"}})
        assert failed.status_code == 422 and failed.json()["error"]["code"] == "tool_failed"
        assert "boom" in failed.json()["error"]["message"]
        assert (await c.post("/tools/math__nope/call", json={"arguments": {}})).status_code == 404
        assert (await c.post("/tools/other__add/call", json={"arguments": {}})).status_code == 404

        # An agent's LLM gets the MCP tools and calls one through the same engine path.
        run = await c.post("/agents/calc/run", json={"input": '/call math__add {"a": 20, "b": 22}'})
        assert run.status_code == 200, run.text
        assert run.json()["output"] == "math__add returned 42"

    async with open_storage(tmp_sqlite_url) as db:
        rows = await db.read("tool_calls", {"tool_type": "mcp"})
        seen = sorted((r["tool_name"], r["status"], r["agent_execution_id"] is not None) for r in rows)
        # The agent run's call is tied to its run; direct calls stand alone.
        assert seen == [("math__add", "success", False), ("math__add", "success", True), ("math__fail", "error", False)]
        assert [r["error_message"] for r in rows if r["status"] == "error"] == [
            "MCP tool 'math__fail' failed: Error executing tool fail: boom"
        ]


async def test_stdio_server_sees_only_its_configured_environment(tmp_path: Path, monkeypatch: Any) -> None:
    for name, value in (
        ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
        ("DATABASE_URL", "postgresql://u:pw@db/x"),
        ("TFRAMEX_LLM_API_KEY", "sk-llm"),
        ("PARENT_TOKEN", "from-parent"),
    ):
        monkeypatch.setenv(name, value)
    config = write_config(tmp_path, {"math": stdio(env={"GREETING": "hello", "PASSED_ON": "${PARENT_TOKEN}"})})
    stack = create_app(build_app(config), enable_security=False)
    async with stack, client(stack) as c:

        async def env(name: str) -> str:
            r = await c.post("/tools/math__env/call", json={"arguments": {"name": name}})
            assert r.status_code == 200, r.text
            return str(r.json()["result"])

        for secret in ("AWS_SECRET_ACCESS_KEY", "DATABASE_URL", "TFRAMEX_LLM_API_KEY", "PARENT_TOKEN"):
            assert await env(secret) == "<unset>"
        assert await env("GREETING") == "hello"
        assert await env("PASSED_ON") == "from-parent"  # named explicitly in the config: passed
        assert await env("PATH") == os.environ["PATH"]


async def test_crashing_server_answers_503_and_is_restarted(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"math": stdio()})
    stack = create_app(build_app(config), enable_security=False, enable_metrics=True)
    async with stack, client(stack) as c:
        ready = await c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["mcp"]["math"]["state"] == "up"
        crashed = await c.post("/tools/math__crash/call", json={"arguments": {}})
        assert crashed.status_code == 503 and crashed.json()["error"]["code"] == "mcp_unavailable"

        async def answers() -> bool:
            r = await c.post("/tools/math__add/call", json={"arguments": {"a": 1, "b": 1}})
            assert r.status_code in (200, 503), r.text  # 503 while it restarts, never a hang or a 500
            return r.status_code == 200 and r.json()["result"] == "2"

        await eventually(answers, "the MCP server to be restarted")
        assert (await c.get("/readyz")).json()["mcp"]["math"]["reconnects"] >= 1
        text = (await c.get("/metrics")).text
    assert 'tframex_mcp_server_up{server="math"} 1.0' in text
    assert 'tframex_mcp_reconnects_total{server="math"}' in text
    assert 'tframex_mcp_tool_calls_total{server="math",status="success",tool="add"} 1.0' in text
    assert 'tframex_mcp_tool_calls_total{server="math",status="unavailable",tool="crash"} 1.0' in text
    assert 'tframex_mcp_tool_duration_seconds_count{server="math",tool="add"}' in text
    assert 'tframex_tool_calls_total{status="success",tool="math__add",type="mcp"} 1.0' in text


async def test_dead_server_is_reported_by_readyz_and_its_tools_answer_503(tmp_path: Path) -> None:
    dead = {"type": "stdio", "command": os.sys.executable, "args": ["-c", "import sys; sys.exit(3)"]}
    config = write_config(tmp_path, {"math": stdio(), "dead": dead})
    stack = create_app(build_app(config), enable_security=False, enable_metrics=True)
    async with stack, client(stack) as c:
        ready = await c.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["error"]["code"] == "not_ready" and "dead" in body["error"]["message"]
        assert body["mcp"]["dead"]["state"] == "down" and body["mcp"]["math"]["state"] == "up"
        call = await c.post("/tools/dead__anything/call", json={"arguments": {}})
        assert call.status_code == 503 and call.json()["error"]["code"] == "mcp_unavailable"
        # The healthy server keeps serving.
        assert (await c.post("/tools/math__add/call", json={"arguments": {"a": 1, "b": 2}})).json()["result"] == "3"
        text = (await c.get("/metrics")).text
    assert 'tframex_mcp_server_up{server="dead"} 0.0' in text


async def test_a_call_that_outlives_its_timeout_answers_503(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"math": stdio(tool_call_timeout=1)})
    stack = create_app(build_app(config), enable_security=False)
    async with stack, client(stack) as c:
        slow = await c.post("/tools/math__sleep/call", json={"arguments": {"seconds": 30}})
        assert slow.status_code == 503 and slow.json()["error"]["code"] == "mcp_timeout"
        assert "within 1 s" in slow.json()["error"]["message"]


async def test_lifespan_stops_servers_without_cancel_scope_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path, {"math": stdio(), "other": stdio()})
    stack = create_app(build_app(config), enable_security=False)
    hub = stack.services.mcp
    with caplog.at_level(logging.DEBUG):
        async with stack, client(stack) as c:
            assert (await c.post("/tools/other__add/call", json={"arguments": {"a": 1, "b": 1}})).status_code == 200
    assert {s.state for s in hub.servers.values()} == {"stopped"}
    text = caplog.text
    assert "cancel scope" not in text and "Traceback" not in text and "no running event loop" not in text


async def test_tframex_meta_tools_read_the_hub(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"math": stdio()})
    stack = create_app(build_app(config), enable_security=False)
    async with stack, client(stack) as c:

        async def meta(name: str, **arguments: Any) -> Any:
            r = await c.post(f"/tools/{name}/call", json={"arguments": arguments})
            assert r.status_code == 200, r.text
            return r.json()["result"]

        assert "Alias: math" in await meta("tframex_list_mcp_servers")
        assert "notes://greeting" in str(await meta("tframex_list_mcp_resources", server_alias="math"))
        assert "hello from a resource" in str(
            await meta("tframex_read_mcp_resource", server_alias="math", resource_uri="notes://greeting")
        )
        assert "review" in str(await meta("tframex_list_mcp_prompts", server_alias="math"))
        used = await meta(
            "tframex_use_mcp_prompt", server_alias="math", prompt_name="review", arguments={"code": "x=1"}
        )
        assert "Please review: x=1" in str(used)


async def test_bare_endpoint_runs_its_servers_in_its_own_lifespan(tmp_path: Path) -> None:
    """No stack: the endpoint's own services start and stop the servers with ASGI lifespan."""
    config = write_config(tmp_path, {"math": stdio()})
    endpoint = TFrameXEndpoint(build_app(config))
    life = Lifespan(endpoint)
    assert (await life.startup())["type"] == "lifespan.startup.complete"
    try:
        answer = await request(endpoint, "POST", "/tools/math__add/call", {"arguments": {"a": 4, "b": 5}})
        assert answer.status == 200 and answer.json()["result"] == "9"
    finally:
        assert (await life.shutdown())["type"] == "lifespan.shutdown.complete"
    assert endpoint.services.mcp.servers["math"].state == "stopped"


async def test_a_hung_server_is_detected_by_ping_and_restarted(tmp_path: Path) -> None:
    """The server stops answering anything (a blocking tool holds its only thread): the next ping
    goes unanswered, the server is restarted, and the call still waiting on the old connection
    answers 503 then (long before its own 60 s timeout)."""
    timeouts = {"tool_call_timeout": 60, "init_step_timeout": 2, "ping_interval": 0.5}
    config = write_config(tmp_path, {"math": stdio(**timeouts)})
    stack = create_app(build_app(config), enable_security=False)
    hub = stack.services.mcp
    async with stack, client(stack) as c:
        hung = await c.post("/tools/math__sleep/call", json={"arguments": {"seconds": 120}})
        assert hung.status_code == 503 and hung.json()["error"]["code"] == "mcp_unavailable", hung.text

        async def restarted() -> bool:
            r = await c.post("/tools/math__add/call", json={"arguments": {"a": 2, "b": 2}})
            assert r.status_code in (200, 503), r.text
            return r.status_code == 200 and hub.servers["math"].reconnects >= 1

        await eventually(restarted, "the hung server to be restarted")
        assert hub.servers["math"].connects == 2


async def test_concurrent_calls_share_one_connection_without_cross_talk(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"math": stdio()})
    stack = create_app(build_app(config), enable_security=False)
    async with stack, client(stack) as c:
        answers = await asyncio.gather(
            *(c.post("/tools/math__add/call", json={"arguments": {"a": i, "b": 1000}}) for i in range(40))
        )
    assert [r.json()["result"] for r in answers] == [str(i + 1000) for i in range(40)]
    assert stack.services.mcp.servers["math"].connects == 1
