"""The instrumentation hooks and the tframex 1.1.0 workarounds, at the runner level."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tframex import BaseLLMWrapper, Message, TFrameXApp

from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import AgentRunner, TailMemory
from tframex_asgi.endpoint.flows import FlowError
from tframex_asgi.errors import LLMError, NotFoundError
from tframex_asgi.events import (
    AgentFinished,
    AgentStarted,
    EventBus,
    FlowFinished,
    FlowStarted,
    FlowStepFinished,
    RunInfo,
    ToolCalled,
)
from tframex_asgi.llm import OfflineLLM


def runner_with_events(app: TFrameXApp) -> tuple[AgentRunner, list[Any]]:
    bus = EventBus()
    seen: list[Any] = []
    bus.subscribe(seen.append)
    return AgentRunner(app, events=bus), seen


async def test_agent_run_emits_start_and_finish() -> None:
    runner, seen = runner_with_events(build_demo_app())
    info = RunInfo(request_id="r1", user_id="u1", conversation_id="c1")
    result = await runner.run_agent("assistant", "hello there", info)
    assert result.content == "Echo: hello there"
    start, finish = seen
    assert isinstance(start, AgentStarted) and start.agent_name == "assistant" and start.parent_run_id is None
    assert isinstance(finish, AgentFinished) and finish.run_id == start.run_id
    assert finish.status == "success" and finish.output == "Echo: hello there" and finish.tool_calls_count == 0
    assert finish.info.request_id == "r1" and finish.info.conversation_id == "c1"
    assert finish.duration_ms >= 0
    assert info.usage.total_tokens > 0


async def test_tool_call_is_typed_native_and_counted() -> None:
    runner, seen = runner_with_events(build_demo_app())
    result = await runner.run_agent("calculator", "please add 2 and 3.5", RunInfo())
    assert result.content == "add returned 5.5"
    tools = [e for e in seen if isinstance(e, ToolCalled)]
    assert len(tools) == 1
    call = tools[0]
    assert call.tool_name == "add" and call.tool_type == "native" and call.status == "success"
    assert call.arguments == {"a": 2.0, "b": 3.5} and call.result == "5.5"
    finish = next(e for e in seen if isinstance(e, AgentFinished))
    assert call.agent_run_id == finish.run_id and finish.tool_calls_count == 1


async def test_callable_agent_runs_as_an_agent_tool_nested_under_its_parent() -> None:
    app = build_demo_app()

    @app.agent(name="manager", callable_agents=["shouter"], system_prompt="Delegate.")
    async def manager() -> None: ...

    runner, seen = runner_with_events(app)
    result = await runner.run_agent("manager", '/call shouter {"input_message": "quiet words"}', RunInfo())
    # upstream 1.1.0 cannot resolve agents as tools; the hook dispatches them
    assert result.content == "shouter returned ECHO: QUIET WORDS"
    starts = {e.agent_name: e for e in seen if isinstance(e, AgentStarted)}
    assert starts["shouter"].parent_run_id == starts["manager"].run_id
    tool = next(e for e in seen if isinstance(e, ToolCalled))
    assert tool.tool_type == "agent" and tool.agent_run_id == starts["manager"].run_id


async def test_flow_emits_ordered_steps_and_links_agent_runs() -> None:
    runner, seen = runner_with_events(build_demo_app())
    execution_id, ctx = await runner.run_flow("echo_then_shout", "hi", RunInfo(user_id="u"))
    assert ctx.current_message.content == "ECHO: ECHO: HI"
    assert isinstance(seen[0], FlowStarted) and seen[0].execution_id == execution_id
    steps = [e for e in seen if isinstance(e, FlowStepFinished)]
    assert [(s.step_order, s.step_name, s.status) for s in steps] == [
        (0, "assistant", "success"),
        (1, "shouter", "success"),
    ]
    assert steps[1].input == "Echo: hi" and steps[1].output == "ECHO: ECHO: HI"
    agent_runs = [e for e in seen if isinstance(e, AgentFinished)]
    assert {a.info.flow_execution_id for a in agent_runs} == {execution_id}
    assert isinstance(seen[-1], FlowFinished) and seen[-1].status == "success" and seen[-1].steps == 2


async def test_failing_step_raises_instead_of_becoming_text() -> None:
    app = build_demo_app(OfflineLLM(fail_on="BOOM"))
    runner, seen = runner_with_events(app)
    with pytest.raises(FlowError) as err:
        await runner.run_flow("echo_then_shout", "BOOM", RunInfo())
    assert err.value.step_name == "assistant" and isinstance(err.value.cause, LLMError)
    step = next(e for e in seen if isinstance(e, FlowStepFinished))
    assert step.status == "error" and "LLMError" in (step.error or "")
    assert isinstance(seen[-1], FlowFinished) and seen[-1].status == "error"


async def test_llm_error_surfaces_and_is_recorded() -> None:
    runner, seen = runner_with_events(build_demo_app(OfflineLLM(fail_on="BOOM")))
    with pytest.raises(LLMError):
        await runner.run_agent("assistant", "BOOM", RunInfo())
    finish = next(e for e in seen if isinstance(e, AgentFinished))
    assert finish.status == "error" and finish.output is None


async def test_unknown_names_are_not_found() -> None:
    runner = AgentRunner(build_demo_app())
    with pytest.raises(NotFoundError):
        await runner.run_agent("nope", "x", RunInfo())
    with pytest.raises(NotFoundError):
        await runner.run_flow("nope", "x", RunInfo())
    with pytest.raises(NotFoundError):
        await runner.call_tool("nope", {}, RunInfo())


class RecordingLLM(BaseLLMWrapper):
    def __init__(self) -> None:
        super().__init__(model_id="recording")
        self.calls: list[tuple[list[Message], dict[str, Any]]] = []

    async def chat_completion(self, messages, stream=False, **kwargs):  # type: ignore[override]
        self.calls.append((list(messages), dict(kwargs)))
        return Message(role="assistant", content=f"reply {len(self.calls)}")


async def test_request_metadata_never_reaches_the_llm_and_memory_keeps_the_newest() -> None:
    llm = RecordingLLM()
    app = TFrameXApp(default_llm=llm, mcp_config_file=None)

    @app.agent(name="a", system_prompt="sys")
    async def a() -> None: ...

    runner = AgentRunner(app, history_limit=4)
    history = [Message(role="user" if i % 2 == 0 else "assistant", content=f"m{i}") for i in range(10)]
    await runner.run_agent("a", "now", RunInfo(request_id="secret-req", user_id="u", conversation_id="c"), history)
    messages, kwargs = llm.calls[0]
    assert set(kwargs) <= {"stream", "tools", "tool_choice"}
    # system prompt, then the newest 4 of history + input (upstream would send the oldest)
    assert [m.content for m in messages] == ["sys", "m7", "m8", "m9", "now"]


async def test_tail_memory_never_opens_on_an_orphan_tool_result() -> None:
    memory = TailMemory(
        [
            Message(role="user", content="u"),
            Message(role="assistant", content=None),
            Message(role="tool", content="t", tool_call_id="1", name="x"),
            Message(role="assistant", content="done"),
        ]
    )
    assert [m.role for m in await memory.get_history(limit=2)] == ["assistant"]
    assert [m.content for m in await memory.get_history(limit=10)] == ["u", None, "t", "done"]


async def test_streaming_yields_chunks_and_records_the_whole_output() -> None:
    runner, seen = runner_with_events(build_demo_app())
    chunks = [c.content async for c in runner.stream_agent("assistant", "one two three", RunInfo())]
    assert chunks == ["Echo:", " one", " two", " three"]
    finish = next(e for e in seen if isinstance(e, AgentFinished))
    assert finish.stream and finish.output == "Echo: one two three" and finish.status == "success"


async def test_concurrent_runs_do_not_cross_talk() -> None:
    runner, seen = runner_with_events(build_demo_app(OfflineLLM(chunk_delay=0.001)))

    async def one(i: int) -> tuple[int, str]:
        info = RunInfo(request_id=f"req-{i}")
        if i % 3 == 0:
            text = "".join([c.content or "" async for c in runner.stream_agent("assistant", f"message {i}", info)])
        else:
            text = (
                await runner.run_agent(
                    "calculator" if i % 3 == 1 else "assistant", f"add {i} and 1000 message {i}", info
                )
            ).content
        return i, text

    results = await asyncio.gather(*(one(i) for i in range(50)))
    for i, text in results:
        if i % 3 == 0:
            assert text == f"Echo: message {i}"
        elif i % 3 == 1:
            assert text == f"add returned {i + 1000}"
        else:
            assert text == f"Echo: add {i} and 1000 message {i}"
    finishes = [e for e in seen if isinstance(e, AgentFinished)]
    assert len(finishes) == 50
    for f in finishes:
        assert f.info.request_id is not None and f.info.request_id.split("-")[1] in (f.input or "")
