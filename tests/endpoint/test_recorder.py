"""Execution events become agent_executions, tool_calls, flow_executions and flow_steps rows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import AgentRunner
from tframex_asgi.endpoint.flows import FlowError
from tframex_asgi.endpoint.recorder import enable_recording
from tframex_asgi.events import RunInfo
from tframex_asgi.llm import OfflineLLM
from tframex_asgi.services import Services
from tframex_asgi.storage import BaseStorage, open_storage


@pytest.fixture
async def services(relational_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    config = EnterpriseConfig.from_kwargs(
        enable_persistence=True,
        persistence_config={"queue": {"spill_path": str(tmp_path / "spill.jsonl"), "flush_interval": 0.01}},
    )
    store = open_storage(relational_url)
    await store.connect()
    svc = Services(config, storage=store)
    enable_recording(svc)
    await svc.startup()
    try:
        yield svc
    finally:
        await svc.shutdown()
        await store.close()


async def _flushed(services: Services) -> BaseStorage:
    await services.writer.flush()
    return services.storage


async def test_agent_run_with_tool_call(services: Services) -> None:
    store = services.storage
    uid = await store.write("users", {"username": "u"})
    conv = await store.write("conversations", {"user_id": uid, "agent_name": "calculator"})
    runner = AgentRunner(build_demo_app(), events=services.events, clock=services.clock)
    await runner.run_agent(
        "calculator", "please add 2 and 3.5", RunInfo(request_id="r1", user_id=uid, conversation_id=conv)
    )
    await _flushed(services)
    (run,) = await store.read("agent_executions")
    assert run["agent_name"] == "calculator" and run["status"] == "success"
    assert run["user_id"] == uid and run["conversation_id"] == conv and run["flow_execution_id"] is None
    assert run["output_message"] == "add returned 5.5" and run["tool_calls_count"] == 1
    assert isinstance(run["execution_time_ms"], int) and run["execution_time_ms"] >= 0
    assert isinstance(run["completed_at"], datetime) and run["completed_at"] >= run["started_at"]
    assert run["metadata"]["request_id"] == "r1" and run["metadata"]["usage"]["prompt_tokens"] > 0
    (call,) = await store.read("tool_calls")
    assert call["agent_execution_id"] == run["id"] and call["tool_name"] == "add" and call["tool_type"] == "native"
    assert call["arguments"] == {"a": 2.0, "b": 3.5} and call["result"] == "5.5" and call["status"] == "success"
    assert call["completed_at"] >= call["called_at"]


async def test_token_identity_is_kept_in_metadata(services: Services) -> None:
    runner = AgentRunner(build_demo_app(), events=services.events, clock=services.clock)
    await runner.run_agent("assistant", "hi", RunInfo(user_id="oidc|alice"))
    store = await _flushed(services)
    (run,) = await store.read("agent_executions")
    assert run["user_id"] is None and run["metadata"]["user"] == "oidc|alice"


async def test_flow_rows_and_keys(services: Services) -> None:
    runner = AgentRunner(build_demo_app(), events=services.events, clock=services.clock)
    execution_id, _ = await runner.run_flow("echo_then_shout", "hi", RunInfo())
    store = await _flushed(services)
    (flow,) = await store.read("flow_executions")
    assert flow["id"] == execution_id and flow["status"] == "success" and flow["flow_name"] == "echo_then_shout"
    assert flow["initial_input"] == "hi" and flow["final_output"] and flow["completed_at"] >= flow["started_at"]
    steps = await store.read("flow_steps", {"execution_id": execution_id}, order_by="step_order")
    assert [(s["step_order"], s["step_name"], s["status"]) for s in steps] == [
        (0, "assistant", "success"),
        (1, "shouter", "success"),
    ]
    runs = await store.read("agent_executions", {"flow_execution_id": execution_id})
    assert sorted(r["agent_name"] for r in runs) == ["assistant", "shouter"]


async def test_failed_flow_is_recorded_as_error(services: Services) -> None:
    runner = AgentRunner(build_demo_app(OfflineLLM(fail_on="BOOM")), events=services.events, clock=services.clock)
    with pytest.raises(FlowError):
        await runner.run_flow("echo_then_shout", "BOOM", RunInfo(user_id=str(uuid.uuid4())))
    store = await _flushed(services)
    (flow,) = await store.read("flow_executions")
    assert flow["status"] == "error" and flow["error_message"] and flow["user_id"] is None  # unknown user unlinked
    (step,) = await store.read("flow_steps")
    assert step["status"] == "error" and "LLMError" in step["error_message"]
    (run,) = await store.read("agent_executions")
    assert run["status"] == "error" and run["flow_execution_id"] == flow["id"]
