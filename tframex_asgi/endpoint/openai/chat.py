"""``POST /v1/chat/completions``: OpenAI's chat API with ``model`` naming an agent.

Stateless as OpenAI's is: the client sends the whole conversation. Client ``tools`` are offered
to the agent's LLM and calls to them come back as ``tool_calls`` (see :mod:`.overlay`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from tframex import Message
from tframex.models.primitives import ToolCall

from tframex_asgi.endpoint.handlers import failure, json_body, run_info
from tframex_asgi.endpoint.openai.errors import ParamError, openai_error
from tframex_asgi.endpoint.openai.messages import ClientToolSpec, parse_message, parse_tools, split_turn
from tframex_asgi.endpoint.openai.models import check_model
from tframex_asgi.endpoint.openai.overlay import RunOverlay
from tframex_asgi.endpoint.sse import SSE_HEADERS, EventStream, end_with, sse
from tframex_asgi.events import RunInfo, Usage

if TYPE_CHECKING:
    from tframex_asgi.endpoint.app import TFrameXEndpoint

__all__ = ["ChatRequest", "chat_completions", "parse_chat_request", "refuse_unsupported"]


@dataclass(frozen=True)
class ChatRequest:
    model: str
    input: Message  # the user message or tool result that ends the conversation
    history: list[Message]
    instructions: list[str]  # the system messages the conversation opens with
    stream: bool
    include_usage: bool
    tools: ClientToolSpec


def flag(body: dict[str, Any], name: str, default: bool, where: str | None = None) -> bool:
    """A boolean parameter; absent or null means ``default`` (clients send null for unset)."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ParamError(where or name, f"'{where or name}' must be true or false")
    return value


def refuse_unsupported(body: dict[str, Any]) -> None:
    """Parameters that would change what the answer is, which an agent cannot honour: a 400
    naming them, never an answer that quietly ignored them."""
    if not flag(body, "parallel_tool_calls", True):
        raise ParamError("parallel_tool_calls", "'parallel_tool_calls': false is not supported")
    if body.get("n") not in (None, 1):
        raise ParamError("n", "only one choice ('n': 1) is supported")
    fmt = body.get("response_format")
    if fmt is not None and fmt != {"type": "text"}:
        raise ParamError("response_format", "only the text response format is supported")


def parse_chat_request(body: dict[str, Any], reserved: tuple[str, ...] = ()) -> ChatRequest:
    """The request, checked; ``reserved`` are the agent's own tool names."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ParamError("model", "'model' (the agent name) is required")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ParamError("messages", "'messages' must be a non-empty list")
    params = [f"messages[{i}]" for i in range(len(raw))]
    last, history = split_turn([parse_message(m, p) for m, p in zip(raw, params, strict=True)], params, "messages")
    stream = flag(body, "stream", False)
    options = body.get("stream_options")
    if options is not None and not stream:
        raise ParamError("stream_options", "'stream_options' is only allowed with 'stream': true")
    if options is not None and not isinstance(options, dict):
        raise ParamError("stream_options", "'stream_options' must be an object")
    include_usage = flag(options or {}, "include_usage", False, "stream_options.include_usage")
    refuse_unsupported(body)
    tools = parse_tools(body.get("tools"), body.get("tool_choice"), reserved)
    # The opening system messages become instructions, kept on every LLM call (see .overlay);
    # later ones stay where they are in the history.
    head = 0
    while head < len(history) and history[head].role == "system":
        head += 1
    instructions = [m.content or "" for m in history[:head]]
    return ChatRequest(model, last, history[head:], instructions, stream, include_usage, tools)


def usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def tool_calls_body(calls: list[ToolCall], indexed: bool = False) -> list[dict[str, Any]]:
    out = []
    for i, c in enumerate(calls):
        item: dict[str, Any] = {
            "id": c.id,
            "type": "function",
            "function": {"name": c.function.name, "arguments": c.function.arguments},
        }
        out.append({"index": i, **item} if indexed else item)
    return out


def completion(model: str, content: str | None, calls: list[ToolCall], usage: Usage, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = tool_calls_body(calls)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": usage_body(usage),
    }


def chunk(
    cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


async def chat_completions(request: Request, ep: TFrameXEndpoint) -> Response:
    body = await json_body(request)
    reserved = check_model(ep, body.get("model"))
    req = parse_chat_request(body, reserved)
    info = run_info(request)
    ep.runner.check_agent(req.model, info)  # per-agent rules: a 403 before any stream starts
    overlay = RunOverlay(req.tools, req.instructions)
    if req.stream:
        return EventStream(_stream(ep, req, info, overlay), SSE_HEADERS)  # type: ignore[return-value]
    try:
        result = await ep.runner.run_agent(req.model, req.input, info, req.history, overlay)
    except Exception as exc:
        raise failure(exc) from exc
    calls = overlay.calls
    return JSONResponse(completion(req.model, result.content, calls, info.usage, int(ep.services.clock.time())))


async def _stream(ep: TFrameXEndpoint, req: ChatRequest, info: RunInfo, overlay: RunOverlay) -> AsyncIterator[bytes]:
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(ep.services.clock.time())
    # With include_usage every chunk carries "usage": null and one last chunk (no choices) the total.
    extra: dict[str, Any] = {"usage": None} if req.include_usage else {}
    yield sse(chunk(cid, created, req.model, {"role": "assistant", "content": ""}, **extra))
    parts = ep.runner.stream_agent(req.model, req.input, info, req.history, overlay)
    try:
        async for part in parts:
            if part.content:
                yield sse(chunk(cid, created, req.model, {"content": part.content}, **extra))
    except asyncio.CancelledError as exc:
        await end_with(parts, exc)  # cancelled at our yield: the run ends with the same cause
        raise
    except Exception as exc:
        err = failure(exc)
        yield sse(openai_error(err.status, err.code, err.message))
        yield sse("[DONE]")
        return
    calls = overlay.calls
    if calls:
        yield sse(chunk(cid, created, req.model, {"tool_calls": tool_calls_body(calls, indexed=True)}, **extra))
    yield sse(chunk(cid, created, req.model, {}, "tool_calls" if calls else "stop", **extra))
    if req.include_usage:
        final = chunk(cid, created, req.model, {}, usage=usage_body(info.usage))
        final["choices"] = []
        yield sse(final)
    yield sse("[DONE]")
