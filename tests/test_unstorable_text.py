"""One rule for text the databases cannot store (NUL, lone surrogates), on SQLite and PostgreSQL.

What a client sends is refused before the run with a 400 naming the field, on every path (agent
runs, tool call arguments, flows, OpenAI inputs), and nothing of the request is written. What a
run produces (here: tool arguments a model decoded from its own JSON) is stored with U+FFFD
instead, so no record is accepted and then dropped by the writer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tframex_asgi import build_stack
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint
from tframex_asgi.storage import open_storage

TABLES = ("conversations", "messages", "agent_executions", "tool_calls", "flow_executions", "flow_steps")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/text.db"
    else:
        yield request.getfixturevalue("pg_schema_dsn")


def stack_for(url: str) -> Any:
    return build_stack(
        TFrameXEndpoint(build_demo_app()),
        enable_security=False,
        enable_persistence=True,
        persistence_config={"connection_string": url},
    )


# (path, body, field named in the 400)
CLIENT_INPUTS = [
    ("/agents/assistant/run", {"input": "hi\x00there"}, "'input' contains a NUL character"),
    ("/agents/assistant/run", {"input": "hi\ud800"}, "'input' contains a lone surrogate (U+D800)"),
    ("/agents/assistant/run", {"input": "hi", "stream": True, "x": "\x00"}, "'x' contains a NUL"),
    ("/tools/word_count/call", {"arguments": {"text": "a\x00b"}}, "'arguments.text' contains a NUL"),
    ("/tools/word_count/call", {"arguments": {"te\x00xt": "ab"}}, "a key of 'arguments' contains a NUL"),
    ("/tools/word_count/call", {"arguments": {"text": "\udfff"}}, "'arguments.text' contains a lone surrogate"),
    ("/flows/echo_then_shout/run", {"input": "x\x00"}, "'input' contains a NUL"),
    (
        "/v1/chat/completions",
        {"model": "assistant", "messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": "\x00"}]},
        "'messages[1].content' contains a NUL",
    ),
    (
        "/v1/chat/completions",
        {"model": "assistant", "stream": True, "messages": [{"role": "user", "content": "\ud83d"}]},
        "'messages[0].content' contains a lone surrogate (U+D83D)",
    ),
]


async def test_client_text_the_database_cannot_store_is_refused_before_the_run(db_url: str) -> None:
    stack = stack_for(db_url)
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        for path, body, says in CLIENT_INPUTS:
            # json.dumps escapes NUL and surrogates (\u0000, \ud800) as a JSON client would.
            resp = await c.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
            assert resp.status_code == 400, (path, resp.status_code, resp.text)
            error = resp.json()["error"]
            assert error["code"] == "invalid_request" and says in error["message"], (path, error)
        writer = stack.services.writer
    assert writer.rejected_total == 0 and writer.dropped_total == 0
    async with open_storage(db_url) as db:
        # Refused at the door: not one row of any of these requests exists.
        assert {t: await db.count(t) for t in TABLES} == dict.fromkeys(TABLES, 0)


async def test_text_a_run_produces_is_stored_replaced_not_dropped(db_url: str) -> None:
    stack = stack_for(db_url)
    # The user's text is storable (a backslash, then "u0000"); the model's JSON arguments decode
    # it into a real NUL, which the tool receives and the tool_calls row must still record.
    text = '/call word_count {"text": "a\\u0000b \\ud800c"}'
    emoji = "paired surrogates are one character: \U0001f600"
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        run = await c.post("/agents/calculator/run", json={"input": text})
        assert run.status_code == 200 and run.json()["output"] == "word_count returned 2", run.text
        ok = await c.post("/agents/assistant/run", content=b'{"input": "' + emoji[:-1].encode() + b'\\ud83d\\ude00"}')
        assert ok.status_code == 200 and ok.json()["output"] == f"Echo: {emoji}", ok.text
        writer = stack.services.writer
    assert writer.rejected_total == 0 and writer.dropped_total == 0
    async with open_storage(db_url) as db:
        (agent,) = await db.read("agent_executions", {"agent_name": "calculator"})
        assert agent["input_message"] == text and agent["tool_calls_count"] == 1
        (call,) = await db.read("tool_calls", {"agent_execution_id": agent["id"]})
        assert call["tool_name"] == "word_count" and call["status"] == "success"
        assert call["arguments"] == {"text": "a\ufffdb \ufffdc"} and call["result"] == "2"
        (echo,) = await db.read("agent_executions", {"agent_name": "assistant"})
        assert echo["input_message"] == emoji and echo["output_message"] == f"Echo: {emoji}"
