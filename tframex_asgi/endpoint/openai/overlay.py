"""What an OpenAI request adds to one agent run: the client's tools and its system instructions.

tframex's agent loop executes every tool call the LLM makes, so a call to a tool only the HTTP
client can run must not reach it. The agent's LLM is replaced, for this run only, by a copy whose
``chat_completion`` adds the client's tools and takes calls to them out of the reply: the loop
then sees a final answer and returns, and the handler hands the calls back to the client as
``tool_calls``. (A copy, not a proxy: the engine checks the LLM's class. Calls go through the
original's bound method, so the HTTP client stays the shared one and the copy owns nothing to close.)

The client's instructions (Responses ``instructions``, the system messages a chat opens with) are
put right after the agent's own system prompt on every LLM call, so a long history can never
push them out of the memory window.

A reply that calls client tools and the agent's own tools together hands back the client's
only; the model sees the agent's tools again on the next turn and may repeat those calls.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from tframex import Message, MessageChunk
from tframex.models.primitives import ToolCall

from tframex_asgi.endpoint.openai.messages import ClientToolSpec

__all__ = ["RunOverlay"]


class RunOverlay:
    """One run's client tools and instructions, and the calls the model made to those tools."""

    def __init__(self, spec: ClientToolSpec, instructions: Sequence[str] = ()) -> None:
        self.tools = spec.tools if spec.offered else ()
        self.names = frozenset(t["function"]["name"] for t in self.tools)
        self.instructions = [Message(role="system", content=text) for text in instructions if text]
        self.calls: list[ToolCall] = []

    @property
    def needed(self) -> bool:
        return bool(self.tools or self.instructions)

    def install(self, agent: Any) -> None:
        """Give ``agent`` (an instance private to this run) an LLM with the overlay."""
        llm = agent.llm
        inner = llm.chat_completion
        clone = copy.copy(llm)

        async def chat_completion(messages: list[Message], stream: bool = False, **kwargs: Any) -> Any:
            if self.instructions:
                head = 0
                while head < len(messages) and messages[head].role == "system":
                    head += 1
                messages = [*messages[:head], *self.instructions, *messages[head:]]
            if self.tools:
                kwargs["tools"] = [*(kwargs.get("tools") or ()), *self.tools]
                kwargs.setdefault("tool_choice", "auto")
            result = await inner(messages, stream=stream, **kwargs)
            if not self.tools:
                return result
            return self._stream(result) if stream else self._reply(result)

        clone.chat_completion = chat_completion
        agent.llm = clone

    def _take(self, calls: list[ToolCall]) -> bool:
        mine = [c for c in calls if c.function.name in self.names]
        if mine:
            self.calls = mine
        return bool(mine)

    def _reply(self, message: Message) -> Message:
        if message.tool_calls and self._take(list(message.tool_calls)):
            return Message(role="assistant", content=message.content)
        return message

    async def _stream(self, chunks: AsyncGenerator[MessageChunk, None]) -> AsyncGenerator[MessageChunk, None]:
        # Tool-call chunks are held back until the reply is complete: only then is it known
        # whether it calls a client tool. Text streams through as it comes.
        held: list[MessageChunk] = []
        async for chunk in chunks:
            if chunk.tool_calls:
                held.append(chunk)
            else:
                yield chunk
        if self._take([c for chunk in held for c in chunk.tool_calls or ()]):
            return
        for chunk in held:
            yield chunk
