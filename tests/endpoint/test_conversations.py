"""Conversations keep tool calls and tool results (the Responses API continues them through
``previous_response_id``) on every relational backend."""

from __future__ import annotations

from tframex import Message
from tframex.models.primitives import FunctionCall, ToolCall

from tframex_asgi.clock import SystemClock
from tframex_asgi.endpoint.conversations import ConversationStore
from tframex_asgi.storage import BaseStorage


async def test_tool_calls_and_results_round_trip(relational: BaseStorage) -> None:
    store = ConversationStore(relational, SystemClock())
    cid = await store.open(None, None, "jwt:someone", "assistant", "weather", lambda row: True)
    call = ToolCall(id="call_1", function=FunctionCall(name="get_weather", arguments='{"city": "Paris"}'))
    turn = [
        Message(role="user", content="weather in Paris?"),
        Message(role="assistant", content=None, tool_calls=[call]),
        Message(role="tool", content="sunny", tool_call_id="call_1", name="get_weather"),
        Message(role="assistant", content="get_weather returned sunny"),
    ]
    await store.append(cid, turn[:2])
    await store.append(cid, [*turn[2:], ("user", "thanks")])
    history = await store.history(cid, 10)
    assert history == [*turn, Message(role="user", content="thanks")]
    # The store returns exactly the newest rows; dropping a result whose call was cut off is the
    # caller's job (TailMemory and the Responses handler do it).
    assert [m.role for m in await store.history(cid, 3)] == ["tool", "assistant", "user"]
