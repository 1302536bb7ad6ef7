"""A run stores its whole turn in ``messages`` (tool calls and tool results too), and the
conversation row is read once per conversation, not once per turn."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.asgi_harness import sse_events
from tframex_asgi import build_stack
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint
from tframex_asgi.services import Services
from tframex_asgi.stack import EnterpriseStack
from tframex_asgi.storage import open_storage
from tframex_asgi.storage.sqlite import SQLiteStorage


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/turns.db"
    return str(request.getfixturevalue("pg_schema_dsn"))


def _stack(url: str) -> EnterpriseStack:
    return build_stack(
        TFrameXEndpoint(build_demo_app()),
        enable_security=False,
        enable_persistence=True,
        persistence_config={"connection_string": url},
    )


async def test_a_tool_turn_is_stored_whole_and_replayed(db_url: str) -> None:
    stack = _stack(db_url)
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        first = (await c.post("/agents/calculator/run", json={"input": "add 2 and 40"})).json()
        cid = first["conversation_id"]
        second = await c.post("/agents/calculator/run", json={"input": "add 1 and 2", "conversation_id": cid})
        assert second.status_code == 200 and second.json()["output"] == "add returned 3"
    async with open_storage(db_url) as db:
        rows = await db.read("messages", {"conversation_id": cid}, order_by="created_at")
    turn = rows[:4]
    assert [r["role"] for r in turn] == ["user", "assistant", "tool", "assistant"]
    assert turn[0]["content"] == "add 2 and 40" and turn[3]["content"] == "add returned 42"
    calls = turn[1]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["add"]
    assert turn[2]["tool_call_id"] == calls[0]["id"] and turn[2]["name"] == "add" and turn[2]["content"] == "42"
    # The second turn ran with the first one's tool messages in its history and was stored whole too.
    assert [r["role"] for r in rows[4:]] == ["user", "assistant", "tool", "assistant"]


async def test_a_streamed_tool_turn_is_stored_whole(tmp_sqlite_url: str) -> None:
    stack = _stack(tmp_sqlite_url)
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        resp = await c.post("/agents/calculator/run", json={"input": "add 5 and 5", "stream": True})
        done = [json.loads(data) async for event, data in sse_events(resp.content) if event == "done"]
        cid = done[0]["conversation_id"]
        messages = (await c.get(f"/conversations/{cid}")).json()["messages"]
    assert [(m["role"], m["name"]) for m in messages] == [
        ("user", None),
        ("assistant", None),
        ("tool", "add"),
        ("assistant", None),
    ]
    assert messages[1]["tool_calls"][0]["id"] == messages[2]["tool_call_id"]


class CountingSQLite(SQLiteStorage):
    """The real SQLite backend, counting the reads of the conversations table."""

    conversation_reads = 0

    async def read(self, table: str, *args: Any, **kwargs: Any) -> Any:
        if table == "conversations":
            self.conversation_reads += 1
        return await super().read(table, *args, **kwargs)


async def test_twenty_turns_read_the_conversation_row_once(tmp_sqlite_url: str) -> None:
    storage = CountingSQLite(tmp_sqlite_url)
    cfg = EnterpriseConfig.from_kwargs(
        enable_security=False, enable_persistence=True, persistence_config={"connection_string": tmp_sqlite_url}
    )
    stack = EnterpriseStack(TFrameXEndpoint(build_demo_app()), services=Services(cfg, storage=storage))
    await storage.connect()
    try:
        async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
            first = (await c.post("/agents/assistant/run", json={"input": "turn 0"})).json()
            cid = first["conversation_id"]
            for i in range(1, 20):
                body = {"input": f"turn {i}", "conversation_id": cid}
                assert (await c.post("/agents/assistant/run", json=body)).status_code == 200
            assert storage.conversation_reads == 0  # created by this stack: known without reading it
            # Deleting forgets the cached row at once: the next turn cannot continue it.
            assert (await c.delete(f"/conversations/{cid}")).status_code == 204
            gone = await c.post("/agents/assistant/run", json={"input": "more", "conversation_id": cid})
            assert gone.status_code == 200 and gone.json()["conversation_id"] == cid  # a fresh one, same id
            assert storage.conversation_reads == 1  # only the turn after the delete reads it (and finds none)
    finally:
        await storage.close()
    async with open_storage(tmp_sqlite_url) as db:
        assert await db.count("messages", {"conversation_id": cid}) == 2


async def test_a_conversation_made_elsewhere_is_read_once(tmp_sqlite_url: str) -> None:
    storage = CountingSQLite(tmp_sqlite_url)
    cfg = EnterpriseConfig.from_kwargs(
        enable_security=False, enable_persistence=True, persistence_config={"connection_string": tmp_sqlite_url}
    )
    other = _stack(tmp_sqlite_url)  # another worker created the conversation
    async with other, httpx.AsyncClient(transport=httpx.ASGITransport(other), base_url="http://t") as c:
        cid = (await c.post("/agents/assistant/run", json={"input": "hi"})).json()["conversation_id"]
    stack = EnterpriseStack(TFrameXEndpoint(build_demo_app()), services=Services(cfg, storage=storage))
    await storage.connect()
    try:
        async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
            for i in range(20):
                body = {"input": f"turn {i}", "conversation_id": cid}
                assert (await c.post("/agents/assistant/run", json=body)).status_code == 200
    finally:
        await storage.close()
    assert storage.conversation_reads == 1
