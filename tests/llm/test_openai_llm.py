"""LLM failures raise instead of coming back as assistant text (an IdP-style mock of the LLM API)."""

from __future__ import annotations

import json

import httpx
import pytest
from pytest_httpx import HTTPXMock
from tframex import Message, OpenAIChatLLM, TFrameXApp

from tframex_asgi.endpoint import AgentRunner
from tframex_asgi.errors import LLMError
from tframex_asgi.events import RunInfo, Usage
from tframex_asgi.llm import StrictOpenAIChatLLM, current_usage, llm_from_env

BASE = "http://llm.test/v1"


def completion(content: str | None = None, tool_calls=None) -> dict:
    message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "choices": [{"message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3},
    }


async def test_success_reports_usage_and_normalises_tool_arguments(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/chat/completions", json=completion("hi"))
    httpx_mock.add_response(
        url=f"{BASE}/chat/completions",
        json=completion(None, [{"id": "c1", "type": "function", "function": {"name": "add", "arguments": {"a": 1}}}]),
    )
    llm = StrictOpenAIChatLLM(model_name="m", api_base_url=BASE, api_key="sk-test")
    usage = Usage()
    token = current_usage.set(usage)
    try:
        assert (await llm.chat_completion([Message(role="user", content="x")])).content == "hi"
        msg = await llm.chat_completion([Message(role="user", content="x")], tools=[{"type": "function"}])
    finally:
        current_usage.reset(token)
    assert msg.tool_calls[0].function.arguments == '{"a": 1}'
    assert usage.total_tokens == 20
    sent = json.loads(httpx_mock.get_requests()[1].content)
    assert sent["tool_choice"] == "auto" and sent["model"] == "m"
    assert httpx_mock.get_requests()[0].headers["authorization"] == "Bearer sk-test"


@pytest.mark.parametrize("status", [401, 429, 500])
async def test_http_errors_raise(httpx_mock: HTTPXMock, status: int) -> None:
    httpx_mock.add_response(url=f"{BASE}/chat/completions", status_code=status, json={"error": {"message": "nope"}})
    llm = StrictOpenAIChatLLM(model_name="m", api_base_url=BASE)
    with pytest.raises(LLMError, match=str(status)):
        await llm.chat_completion([Message(role="user", content="x")])


async def test_connection_errors_raise(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=f"{BASE}/chat/completions")
    llm = StrictOpenAIChatLLM(model_name="m", api_base_url=BASE)
    with pytest.raises(LLMError, match="unreachable"):
        await llm.chat_completion([Message(role="user", content="x")])


async def test_stream_chunks_and_tool_call_assembly(httpx_mock: HTTPXMock) -> None:
    lines = [
        {"choices": [{"delta": {"role": "assistant", "content": "Hel"}}]},
        {"choices": [{"delta": {"content": "lo"}}]},
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "id": "c9", "function": {"name": "ad", "arguments": '{"a"'}}]}}
            ]
        },
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "d", "arguments": ": 2}"}}]}}]},
        {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2}},
    ]
    body = "".join(f"data: {json.dumps(x)}\n\n" for x in lines) + "data: [DONE]\n\n"
    httpx_mock.add_response(
        url=f"{BASE}/chat/completions", content=body.encode(), headers={"content-type": "text/event-stream"}
    )
    llm = StrictOpenAIChatLLM(model_name="m", api_base_url=BASE)
    chunks = [c async for c in await llm.chat_completion([Message(role="user", content="x")], stream=True)]
    assert [c.content for c in chunks[:2]] == ["Hel", "lo"]
    call = chunks[2].tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == ("c9", "add", '{"a": 2}')


async def test_stream_left_early_counts_the_deltas_produced(httpx_mock: HTTPXMock) -> None:
    # No usage chunk ever arrives (the consumer stops after two deltas, as when the client of
    # the endpoint disconnects): the budget is charged one token per delta produced, not zero.
    lines = [{"choices": [{"delta": {"content": f"w{i} "}}]} for i in range(10)]
    body = "".join(f"data: {json.dumps(x)}\n\n" for x in lines) + "data: [DONE]\n\n"
    httpx_mock.add_response(
        url=f"{BASE}/chat/completions", content=body.encode(), headers={"content-type": "text/event-stream"}
    )
    llm = StrictOpenAIChatLLM(model_name="m", api_base_url=BASE)
    usage = Usage()
    token = current_usage.set(usage)
    try:
        stream = await llm.chat_completion([Message(role="user", content="x")], stream=True)
        got = [await stream.__anext__(), await stream.__anext__()]
        await stream.aclose()
    finally:
        current_usage.reset(token)
    assert [c.content for c in got] == ["w0 ", "w1 "]
    assert (usage.prompt_tokens, usage.completion_tokens) == (0, 2)


async def test_stream_http_error_raises(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/chat/completions", status_code=503, text="down")
    llm = StrictOpenAIChatLLM(model_name="m", api_base_url=BASE)
    with pytest.raises(LLMError, match="503"):
        [c async for c in await llm.chat_completion([Message(role="user", content="x")], stream=True)]


async def test_upstream_openai_llm_error_text_is_surfaced_as_an_error(httpx_mock: HTTPXMock) -> None:
    # tframex 1.1.0's own wrapper turns a 500 into the answer "LLM API Error: 500 ..."
    httpx_mock.add_response(url=f"{BASE}/chat/completions", status_code=500, json={"error": {"message": "boom"}})
    app = TFrameXApp(default_llm=OpenAIChatLLM(model_name="m", api_base_url=BASE), mcp_config_file=None)

    @app.agent(name="a")
    async def a() -> None: ...

    with pytest.raises(LLMError):
        await AgentRunner(app).run_agent("a", "x", RunInfo())


async def test_shared_llm_client_survives_concurrent_runs(httpx_mock: HTTPXMock) -> None:
    # Upstream closes the LLM's HTTP client when a run context exits, breaking concurrent runs.
    httpx_mock.add_response(url=f"{BASE}/chat/completions", json=completion("ok"), is_reusable=True)
    llm = StrictOpenAIChatLLM(model_name="m", api_base_url=BASE)
    app = TFrameXApp(default_llm=llm, mcp_config_file=None)

    @app.agent(name="a")
    async def a() -> None: ...

    runner = AgentRunner(app)
    for _ in range(3):
        assert (await runner.run_agent("a", "x", RunInfo())).content == "ok"
    assert llm._client is not None and not llm._client.is_closed


def test_llm_from_env() -> None:
    assert llm_from_env({}) is None
    llm = llm_from_env({"TFRAMEX_LLM_BASE_URL": BASE, "TFRAMEX_LLM_API_KEY": "k", "TFRAMEX_LLM_MODEL": "gpt-x"})
    assert isinstance(llm, StrictOpenAIChatLLM) and llm.model_id == "gpt-x" and llm.api_key == "k"
