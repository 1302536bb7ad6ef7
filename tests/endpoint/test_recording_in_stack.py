"""With persistence on, the stack records agent runs, tool calls and flows through the write queue."""

from __future__ import annotations

import httpx

from tframex_asgi import build_stack
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint
from tframex_asgi.storage import open_storage


async def test_runs_tool_calls_and_flows_are_recorded(tmp_sqlite_url: str) -> None:
    stack = build_stack(
        TFrameXEndpoint(build_demo_app()),
        enable_security=False,
        enable_persistence=True,
        persistence_config={"connection_string": tmp_sqlite_url},
    )
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        resp = await c.post("/agents/calculator/run", json={"input": "add 2 and 40"})
        assert resp.status_code == 200, resp.text
        run = resp.json()
        flow = (await c.post("/flows/echo_then_shout/run", json={"input": "hi"})).json()
    # Shutdown flushed the queue: read back through a fresh connection.
    async with open_storage(tmp_sqlite_url) as db:
        agents = await db.read("agent_executions", {"conversation_id": run["conversation_id"]})
        assert len(agents) == 1 and agents[0]["agent_name"] == "calculator"
        assert agents[0]["status"] == "success" and agents[0]["tool_calls_count"] == 1
        assert agents[0]["output_message"] == "add returned 42" and agents[0]["execution_time_ms"] >= 0
        tools = await db.read("tool_calls", {"agent_execution_id": agents[0]["id"]})
        assert [(t["tool_name"], t["tool_type"], t["status"]) for t in tools] == [("add", "native", "success")]
        flows = await db.read("flow_executions", {"id": flow["execution_id"]})
        assert flows[0]["status"] == "success" and flows[0]["completed_at"] is not None
        assert flows[0]["final_output"] == "ECHO: ECHO: HI"
        steps = await db.read("flow_steps", {"execution_id": flow["execution_id"]}, order_by="step_order")
        assert [(s["step_name"], s["status"]) for s in steps] == [("assistant", "success"), ("shouter", "success")]
        step_runs = await db.read("agent_executions", {"flow_execution_id": flow["execution_id"]})
        assert sorted(r["agent_name"] for r in step_runs) == ["assistant", "shouter"]
