"""An OpenAI-compatible chat LLM that raises on failure.

tframex 1.1.0's ``OpenAIChatLLM`` returns failures as assistant text ("LLM API Error: 500 ...");
served over HTTP that would be a 200 with an error message as the answer. This subclass raises
:class:`LLMError` instead and reports token usage.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator
from typing import Any

import httpx
from tframex import Message, MessageChunk, OpenAIChatLLM
from tframex.models.primitives import FunctionCall, ToolCall

from tframex_asgi.errors import LLMError
from tframex_asgi.llm.usage import report_usage

__all__ = ["TFRAMEX_ERROR_PREFIXES", "StrictOpenAIChatLLM", "llm_from_env"]

# What tframex 1.1.0's OpenAIChatLLM puts in the content when a call failed.
TFRAMEX_ERROR_PREFIXES = ("LLM API Error: ", "LLM API Stream Error: ", "Unexpected error: ", "LLM call (")


class StrictOpenAIChatLLM(OpenAIChatLLM):  # type: ignore[misc]
    def _payload(self, messages: list[Message], stream: bool, kwargs: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model_id,
            "messages": [m.model_dump(exclude_none=True) for m in messages],
            "stream": stream,
            "max_tokens": kwargs.pop("max_tokens", self.default_max_tokens),
            "temperature": kwargs.pop("temperature", self.default_temperature),
        }
        tools = kwargs.pop("tools", None)
        if tools:
            payload["tools"] = tools
            payload["tool_choice"] = kwargs.pop("tool_choice", "auto")
        kwargs.pop("tool_choice", None)
        kwargs.pop("max_retries", None)
        return payload

    async def chat_completion(  # type: ignore[override]
        self, messages: list[Message], stream: bool = False, **kwargs: Any
    ) -> Message | AsyncGenerator[MessageChunk, None]:
        payload = self._payload(messages, stream, dict(kwargs))
        client = await self._get_client()
        if stream:
            return self._stream(client, payload)
        try:
            response = await client.post(self.chat_completions_url, json=payload)
        except httpx.HTTPError as exc:
            raise LLMError(f"LLM {self.model_id} unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise LLMError(f"LLM {self.model_id} answered HTTP {response.status_code}")
        try:
            data = response.json()
            message = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"LLM {self.model_id} sent a malformed response") from exc
        usage = data.get("usage") or {}
        report_usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
        for call in message.get("tool_calls") or ():
            args = call.get("function", {}).get("arguments")
            if args is not None and not isinstance(args, str):
                call["function"]["arguments"] = json.dumps(args)
        return Message(**message)

    async def _stream(self, client: httpx.AsyncClient, payload: dict[str, Any]) -> AsyncGenerator[MessageChunk, None]:
        calls: dict[int, dict[str, Any]] = {}
        # Servers report usage in a last chunk, if at all; a stream that ends without it (the
        # client left, or the server sends none) counts one completion token per content delta,
        # so token budgets are charged for what was produced rather than nothing.
        deltas, reported = 0, False
        try:
            async with client.stream("POST", self.chat_completions_url, json=payload) as response:
                if response.status_code != 200:
                    raise LLMError(f"LLM {self.model_id} answered HTTP {response.status_code}")
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        chunk = json.loads(data)
                    except ValueError as exc:
                        raise LLMError(f"LLM {self.model_id} sent a malformed stream chunk") from exc
                    usage = chunk.get("usage")
                    if usage:
                        reported = True
                        report_usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            deltas += 1
                            yield MessageChunk(role="assistant", content=delta["content"])
                        for part in delta.get("tool_calls") or ():
                            slot = calls.setdefault(int(part.get("index", 0)), {"id": None, "name": "", "args": ""})
                            slot["id"] = part.get("id") or slot["id"]
                            fn = part.get("function") or {}
                            slot["name"] += fn.get("name") or ""
                            slot["args"] += fn.get("arguments") or ""
        except httpx.HTTPError as exc:
            raise LLMError(f"LLM {self.model_id} stream failed: {type(exc).__name__}") from exc
        finally:
            if not reported and deltas:
                report_usage(0, deltas)
        if calls:
            yield MessageChunk(
                role="assistant",
                content=None,
                tool_calls=[
                    ToolCall(
                        id=c["id"] or f"call_{i}", function=FunctionCall(name=c["name"], arguments=c["args"] or "{}")
                    )
                    for i, c in sorted(calls.items())
                ],
            )


def llm_from_env(environ: dict[str, str] | None = None) -> StrictOpenAIChatLLM | None:
    """An LLM from TFRAMEX_LLM_BASE_URL / TFRAMEX_LLM_API_KEY / TFRAMEX_LLM_MODEL, if set."""
    env = dict(os.environ) if environ is None else environ
    base = env.get("TFRAMEX_LLM_BASE_URL")
    if not base:
        return None
    return StrictOpenAIChatLLM(
        model_name=env.get("TFRAMEX_LLM_MODEL", "gpt-4o-mini"),
        api_base_url=base,
        api_key=env.get("TFRAMEX_LLM_API_KEY"),
    )
