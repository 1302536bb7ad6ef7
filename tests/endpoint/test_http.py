"""The endpoint over HTTP (security off here: the security suites cover auth on these routes)."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import openai
import pytest
from tframex import BaseLLMWrapper, Message, MessageChunk

from tests.asgi_harness import sse_events
from tframex_asgi import build_stack
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint
from tframex_asgi.llm import OfflineLLM


def make_stack(llm=None, **settings):
    return build_stack(TFrameXEndpoint(build_demo_app(llm)), enable_security=False, **settings)


@pytest.fixture
async def client():
    stack = make_stack(OfflineLLM(fail_on="BOOM"))
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        yield c


async def test_health_and_catalogue(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    agents = {a["name"]: a for a in (await client.get("/agents")).json()["agents"]}
    assert set(agents) == {"assistant", "calculator", "shouter"}
    assert agents["calculator"]["tools"] == ["add", "word_count"]
    tools = {t["name"]: t for t in (await client.get("/tools")).json()["tools"]}
    assert tools["add"]["parameters"]["properties"]["a"]["type"] == "number"
    flows = (await client.get("/flows")).json()["flows"]
    assert flows == [
        {"name": "echo_then_shout", "description": flows[0]["description"], "steps": ["assistant", "shouter"]}
    ]


async def test_agent_run_and_conversation_continues(client: httpx.AsyncClient) -> None:
    first = (await client.post("/agents/assistant/run", json={"input": "hello"})).json()
    assert first["output"] == "Echo: hello" and first["usage"]["total_tokens"] > 0
    cid = first["conversation_id"]
    second = await client.post("/agents/assistant/run", json={"input": "again", "conversation_id": cid})
    assert second.status_code == 200 and second.json()["conversation_id"] == cid
    convo = (await client.get(f"/conversations/{cid}")).json()
    assert [(m["role"], m["content"]) for m in convo["messages"]] == [
        ("user", "hello"),
        ("assistant", "Echo: hello"),
        ("user", "again"),
        ("assistant", "Echo: again"),
    ]
    listed = (await client.get("/conversations")).json()["conversations"]
    assert [c["id"] for c in listed] == [cid]
    assert (await client.delete(f"/conversations/{cid}")).status_code == 204
    assert (await client.get(f"/conversations/{cid}")).status_code == 404


async def test_tool_call_flow_run_and_tool_errors(client: httpx.AsyncClient) -> None:
    assert (await client.post("/agents/calculator/run", json={"input": "add 2 and 40"})).json()[
        "output"
    ] == "add returned 42"
    assert (await client.post("/tools/add/call", json={"arguments": {"a": 1, "b": 2}})).json() == {
        "tool": "add",
        "result": 3,
    }
    bad = await client.post("/tools/add/call", json={"arguments": {"a": "x", "b": 2}})
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"] == {
        "code": "invalid_request",
        "message": "tool 'add': argument 'a' must be number, got string",
    }
    # Valid arguments whose result JSON cannot carry (1e308 + 1e308 is inf): the tool's failure, not a 500.
    inf = await client.post("/tools/add/call", json={"arguments": {"a": 1e308, "b": 1e308}})
    assert inf.status_code == 422, inf.text
    assert inf.json()["error"] == {
        "code": "tool_failed",
        "message": "tool 'add' returned a result that is not JSON (Out of range float values are not JSON compliant)",
    }
    flow = (await client.post("/flows/echo_then_shout/run", json={"input": "hi"})).json()
    assert flow["output"] == "ECHO: ECHO: HI" and flow["steps"] == 2 and uuid.UUID(flow["execution_id"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/agents/nope/run", {"input": "x"}, 404, "not_found"),
        ("POST", "/agents/assistant/run", b"{not json", 400, "invalid_request"),
        ("POST", "/agents/assistant/run", {"text": "x"}, 400, "invalid_request"),
        ("POST", "/agents/assistant/run", {"input": "x", "conversation_id": "42"}, 400, "invalid_request"),
        ("POST", "/agents/assistant/run", {"input": "x", "stream": "yes"}, 400, "invalid_request"),
        ("POST", "/agents/assistant/run", {"input": "BOOM"}, 502, "llm_error"),
        ("POST", "/flows/echo_then_shout/run", {"input": "BOOM"}, 502, "llm_error"),
        ("POST", "/flows/nope/run", {"input": "x"}, 404, "not_found"),
        ("POST", "/tools/nope/call", {}, 404, "not_found"),
        ("GET", "/conversations/not-a-uuid", None, 400, "invalid_request"),
        ("GET", "/nowhere", None, 404, "not_found"),
        ("POST", "/v1/chat/completions", {"model": "assistant", "messages": []}, 400, "invalid_request"),
        (
            "POST",
            "/v1/chat/completions",
            {"model": "nope", "messages": [{"role": "user", "content": "x"}]},
            404,
            "model_not_found",
        ),
    ],
)
async def test_errors_are_json_with_codes(client, method, path, body, status, code) -> None:
    content = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    resp = await client.request(method, path, content=content)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code


async def test_agent_stream_is_sse(client: httpx.AsyncClient) -> None:
    resp = await client.post("/agents/assistant/run", json={"input": "a b c", "stream": True})
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [(e, json.loads(d)) async for e, d in sse_events(resp.content)]
    assert [e for e, _ in events] == ["chunk"] * 4 + ["done"]
    assert "".join(d["content"] for e, d in events if e == "chunk") == "Echo: a b c"
    assert events[-1][1]["output"] == "Echo: a b c"
    failed = await client.post("/agents/assistant/run", json={"input": "BOOM", "stream": True})
    assert [e async for e, _ in sse_events(failed.content)] == ["error"]


async def test_openai_sdk_against_chat_completions() -> None:
    stack = make_stack()
    async with stack:
        sdk = openai.AsyncOpenAI(
            base_url="http://t/v1",
            api_key="unused",
            http_client=httpx.AsyncClient(transport=httpx.ASGITransport(stack)),
        )
        reply = await sdk.chat.completions.create(
            model="assistant", messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "hey"}]
        )
        assert reply.choices[0].message.content == "Echo: hey" and reply.usage.total_tokens > 0
        stream = await sdk.chat.completions.create(
            model="shouter", messages=[{"role": "user", "content": "quiet"}], stream=True
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        assert "".join(parts) == "ECHO: QUIET"


async def test_chat_accepts_null_for_unset_parameters(client: httpx.AsyncClient) -> None:
    unset = {"n": None, "stream": None, "stream_options": None, "parallel_tool_calls": None, "tools": None}
    body = {"model": "assistant", "messages": [{"role": "user", "content": "hi"}], **unset}
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"] == "Echo: hi"
    wrong = {**body, "stream": True, "stream_options": {"include_usage": 1}}
    bad = await client.post("/v1/chat/completions", json=wrong)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "stream_options.include_usage"


async def test_openai_sdk_sees_llm_failures_as_openai_errors() -> None:
    stack = make_stack(OfflineLLM(fail_on="BOOM"))
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack)) as http:
        sdk = openai.AsyncOpenAI(base_url="http://t/v1", api_key="unused", http_client=http, max_retries=0)
        boom = [{"role": "user", "content": "BOOM"}]
        with pytest.raises(openai.InternalServerError) as failed:
            await sdk.chat.completions.create(model="assistant", messages=boom)
        assert (failed.value.status_code, failed.value.type, failed.value.code) == (502, "server_error", "llm_error")
        stream = await sdk.chat.completions.create(model="assistant", messages=boom, stream=True)
        with pytest.raises(openai.APIError) as mid_stream:
            [c async for c in stream]
        assert mid_stream.value.code == "llm_error"
        events = [e async for e in await sdk.responses.create(model="assistant", input="BOOM", stream=True)]
        assert [e.type for e in events] == ["response.created", "response.in_progress", "response.failed"]
        assert events[-1].response.status == "failed" and events[-1].response.error.code == "llm_error"
        with pytest.raises(openai.InternalServerError):
            await sdk.responses.create(model="assistant", input="BOOM")
        # The failed stored turn left no half conversation behind: nothing was appended.
        rows = await stack.services.storage.read("messages", None)
        assert [r["content"] for r in rows if "BOOM" in (r["content"] or "")] == []
        # Unknown /v1 routes answer in OpenAI's shape too.
        missing = await http.get("http://t/v1/nowhere")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


async def test_fifty_concurrent_runs_some_streaming_no_cross_talk() -> None:
    stack = make_stack(OfflineLLM(chunk_delay=0.001))
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:

        async def one(i: int) -> None:
            if i % 2:
                resp = await c.post("/agents/assistant/run", json={"input": f"run {i}", "stream": True})
                events = [(e, json.loads(d)) async for e, d in sse_events(resp.content)]
                assert events[-1][0] == "done" and events[-1][1]["output"] == f"Echo: run {i}"
                cid = events[-1][1]["conversation_id"]
            else:
                body = (await c.post("/agents/calculator/run", json={"input": f"add {i} and 7"})).json()
                assert body["output"] == f"add returned {i + 7}"
                cid = body["conversation_id"]
            convo = (await c.get(f"/conversations/{cid}")).json()
            # The whole turn, and only this run's: the calculator's tool call and result too.
            roles = ["user", "assistant"] if i % 2 else ["user", "assistant", "tool", "assistant"]
            assert [m["role"] for m in convo["messages"]] == roles and str(i) in convo["messages"][0]["content"]

        await asyncio.gather(*(one(i) for i in range(50)))
        assert len((await c.get("/conversations", params={"limit": 100})).json()["conversations"]) == 50


class GatedLLM(BaseLLMWrapper):
    """Streams one chunk, then waits for the test to open the gate before the rest."""

    def __init__(self) -> None:
        super().__init__(model_id="gated")
        self.gate = asyncio.Event()

    async def chat_completion(self, messages, stream=False, **kwargs):  # type: ignore[override]
        async def gen():
            yield MessageChunk(role="assistant", content="first")
            await self.gate.wait()
            yield MessageChunk(role="assistant", content=" second")

        return gen() if stream else Message(role="assistant", content="first second")


async def test_sse_is_not_buffered_under_uvicorn(unused_tcp_port: int) -> None:
    import uvicorn

    llm = GatedLLM()
    stack = make_stack(llm)
    server = uvicorn.Server(
        uvicorn.Config(stack, host="127.0.0.1", port=unused_tcp_port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{unused_tcp_port}") as c,
            c.stream("POST", "/agents/assistant/run", json={"input": "x", "stream": True}) as resp,
        ):
            lines = resp.aiter_lines()
            # The first chunk arrives while the model is still blocked on the gate.
            assert await anext(lines) == "event: chunk"
            assert json.loads((await anext(lines))[6:]) == {"content": "first"}
            llm.gate.set()
            rest = [line async for line in lines]
        assert "event: done" in rest
    finally:
        server.should_exit = True
        await task


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"a": 1}, "tool 'add' needs the argument 'b'"),
        ({}, "tool 'add' needs the arguments 'a', 'b'"),
        ({"a": 1, "b": 2, "c": 3}, "tool 'add' has no argument 'c' (it takes: 'a', 'b')"),
        ({"a": True, "b": 2}, "tool 'add': argument 'a' must be number, got boolean"),
        ({"a": None, "b": 2}, "tool 'add': argument 'a' must be number, got null"),
        ({"a": [1], "b": 2}, "tool 'add': argument 'a' must be number, got array"),
    ],
)
async def test_tool_arguments_are_checked_against_the_declared_parameters(
    client: httpx.AsyncClient, arguments: dict[str, object], message: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A client's mistake is a 400 naming the argument, before the tool's Python code runs (no
    Python error text, no traceback in the log)."""
    with caplog.at_level("DEBUG"):
        resp = await client.post("/tools/add/call", json={"arguments": arguments})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == {"code": "invalid_request", "message": message}
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


async def test_a_tool_that_fails_on_valid_arguments_is_still_a_422() -> None:
    app = build_demo_app(OfflineLLM())

    @app.tool(
        description="Fails on purpose.",
        parameters_schema={"properties": {"n": {"type": "integer", "enum": [1, 2]}}, "required": ["n"]},
    )
    async def breaks(n: int) -> int:
        raise RuntimeError(f"broken by {n}")

    stack = build_stack(TFrameXEndpoint(app), enable_security=False)
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        failed = await c.post("/tools/breaks/call", json={"arguments": {"n": 2.0}})  # 2.0 is an integer in JSON
        assert failed.status_code == 422 and failed.json()["error"]["code"] == "tool_failed", failed.text
        assert "broken by 2" in failed.json()["error"]["message"]
        refused = await c.post("/tools/breaks/call", json={"arguments": {"n": 3}})
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == "tool 'breaks': argument 'n' must be one of [1, 2]"
        fraction = await c.post("/tools/breaks/call", json={"arguments": {"n": 1.5}})
        assert fraction.json()["error"]["message"] == "tool 'breaks': argument 'n' must be integer, got number"
        ok = await c.post("/tools/add/call", json={"arguments": {"a": 1.5, "b": -2}})
        assert ok.json() == {"tool": "add", "result": -0.5}


async def test_conversation_listing_refuses_an_unknown_query_parameter(client: httpx.AsyncClient) -> None:
    """A misspelt parameter would list everything unfiltered; like GET /audit, it is a 400 naming it."""
    resp = await client.get("/conversations?limt=5")
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == "unknown query parameter 'limt' (limit, offset, all)"
    assert (await client.get("/conversations?limit=5&offset=0")).status_code == 200
