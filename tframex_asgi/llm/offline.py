"""A deterministic offline LLM: the demo and the tests run without any network.

Rules, applied to the conversation it is given:

* the last message is a tool result -> it answers ``"<tool> returned <result>"``;
* tools are offered and the user's text names one of them as a word -> it calls that tool,
  filling number parameters with the numbers in the text, in order, and string parameters
  with the text itself (``/call name {"json": "args"}`` calls a tool explicitly);
* otherwise it answers ``"Echo: <text>"``; a system prompt containing ``UPPERCASE`` upper-cases
  the answer and one containing ``REVERSE`` reverses its words.

Streaming yields the answer word by word (``chunk_delay`` seconds apart), reporting each word's
token as it is yielded.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from tframex import BaseLLMWrapper, Message, MessageChunk
from tframex.models.primitives import FunctionCall, ToolCall

from tframex_asgi.errors import LLMError
from tframex_asgi.llm.usage import report_usage

__all__ = ["OfflineLLM"]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_EXPLICIT = re.compile(r"^/call\s+([A-Za-z0-9_\-]+)\s*(\{.*\})?\s*$", re.S)


def _words(text: str) -> int:
    return len(text.split())


class OfflineLLM(BaseLLMWrapper):  # type: ignore[misc]
    def __init__(self, model_id: str = "offline", *, chunk_delay: float = 0.0, fail_on: str | None = None) -> None:
        super().__init__(model_id=model_id)
        self.chunk_delay = chunk_delay
        # Inputs containing this marker raise LLMError: lets tests and demos exercise failures.
        self.fail_on = fail_on

    async def chat_completion(  # type: ignore[override]
        self, messages: list[Message], stream: bool = False, **kwargs: Any
    ) -> Message | AsyncGenerator[MessageChunk, None]:
        reply = self._reply(messages, kwargs.get("tools") or [])
        prompt_tokens = sum(_words(m.content or "") for m in messages)
        if not stream:
            report_usage(prompt_tokens, _words(reply.content or "") + len(reply.tool_calls or ()))
            return reply
        # Streaming reports each completion token as it is produced, so a stream the client
        # leaves early counts only what was sent (one token per word, as above).
        report_usage(prompt_tokens, 0)
        return self._stream(reply)

    async def _stream(self, reply: Message) -> AsyncGenerator[MessageChunk, None]:
        if reply.tool_calls:
            report_usage(0, len(reply.tool_calls))
            yield MessageChunk(role="assistant", content=None, tool_calls=reply.tool_calls)
            return
        words = (reply.content or "").split(" ")
        for i, word in enumerate(words):
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            report_usage(0, 1 if word else 0)
            yield MessageChunk(role="assistant", content=word if i == 0 else " " + word)

    def _reply(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]]) -> Message:
        if not messages:
            return Message(role="assistant", content="Echo: ")
        last = messages[-1]
        if self.fail_on and any(self.fail_on in (m.content or "") for m in messages if m.role == "user"):
            raise LLMError(f"offline LLM asked to fail ({self.fail_on!r} in the input)")
        if last.role == "tool":
            return Message(role="assistant", content=f"{last.name} returned {last.content}")
        text = last.content or ""
        call = self._tool_call(text, tools) if last.role == "user" else None
        if call is not None:
            return Message(role="assistant", content=None, tool_calls=[call])
        system = " ".join(m.content or "" for m in messages if m.role == "system")
        answer = f"Echo: {text}"
        if "REVERSE" in system:
            answer = " ".join(reversed(answer.split(" ")))
        if "UPPERCASE" in system:
            answer = answer.upper()
        return Message(role="assistant", content=answer)

    @staticmethod
    def _tool_call(text: str, tools: Sequence[dict[str, Any]]) -> ToolCall | None:
        by_name = {t["function"]["name"]: t["function"] for t in tools if t.get("type") == "function"}
        explicit = _EXPLICIT.match(text.strip())
        if explicit and explicit.group(1) in by_name:
            return ToolCall(
                id=f"call_{uuid.uuid4().hex[:12]}",
                function=FunctionCall(name=explicit.group(1), arguments=explicit.group(2) or "{}"),
            )
        words = set(re.findall(r"[A-Za-z0-9_\-]+", text.lower()))
        for name, spec in by_name.items():
            if name.lower() not in words:
                continue
            numbers = iter(_NUMBER.findall(text))
            args: dict[str, Any] = {}
            for param, schema in (spec.get("parameters") or {}).get("properties", {}).items():
                kind = schema.get("type", "string")
                if kind in ("integer", "number"):
                    raw = next(numbers, None)
                    if raw is not None:
                        args[param] = int(float(raw)) if kind == "integer" else float(raw)
                elif kind == "string":
                    args[param] = text
            return ToolCall(
                id=f"call_{uuid.uuid4().hex[:12]}", function=FunctionCall(name=name, arguments=json.dumps(args))
            )
        return None
