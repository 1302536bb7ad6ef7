"""``POST /v1/responses``: OpenAI's Responses API with ``model`` naming an agent.

Responses are kept as our conversations: a stored response's id carries its conversation's id
(``resp_<conversation uuid hex><random>``), and ``previous_response_id`` continues that
conversation with its newest messages (as ``/agents/{name}/run`` with ``conversation_id``
does), owner-checked like every conversation. ``store: false`` keeps nothing, so its id cannot be
continued. ``instructions`` apply to this response only, as in OpenAI's API.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tframex import Message
from tframex.models.primitives import FunctionCall, ToolCall

from tframex_asgi.endpoint.openai.chat import flag
from tframex_asgi.endpoint.openai.errors import ParamError
from tframex_asgi.endpoint.openai.messages import ClientToolSpec, parse_message, parse_tools
from tframex_asgi.endpoint.openai.overlay import RunOverlay
from tframex_asgi.errors import NotFoundError
from tframex_asgi.events import RunInfo, Usage

if TYPE_CHECKING:
    from tframex_asgi.endpoint.app import TFrameXEndpoint

__all__ = ["ResponseNotFound", "ResponsesRequest", "Turn", "call_item", "message_item", "parse_responses_request"]

_PREFIX = "resp_"


class ResponseNotFound(NotFoundError):
    code = "previous_response_not_found"

    def __init__(self, response_id: str) -> None:
        super().__init__(f"no stored response with id {response_id!r}")
        self.param = "previous_response_id"


@dataclass(frozen=True)
class ResponsesRequest:
    model: str
    input: list[Message]
    params: list[str]  # where each input message came from, for errors
    instructions: str | None
    previous_response_id: str | None
    store: bool
    stream: bool
    tools: ClientToolSpec


def _function_call(item: dict[str, Any], param: str) -> ToolCall:
    call_id, name, args = item.get("call_id"), item.get("name"), item.get("arguments", "")
    if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(args, str):
        raise ParamError(param, "a function_call item needs a 'call_id', a 'name' and string 'arguments'")
    return ToolCall(id=call_id, function=FunctionCall(name=name, arguments=args))


def _function_output(item: dict[str, Any], param: str) -> Message:
    call_id, output = item.get("call_id"), item.get("output")
    if not isinstance(call_id, str) or not isinstance(output, str):
        raise ParamError(param, "a function_call_output item needs a 'call_id' and a string 'output'")
    return Message(role="tool", tool_call_id=call_id, content=output)


def parse_input(raw: Any) -> tuple[list[Message], list[str]]:
    if isinstance(raw, str):
        return [Message(role="user", content=raw)], ["input"]
    if not isinstance(raw, list) or not raw:
        raise ParamError("input", "'input' must be a string or a non-empty list of input items")
    messages: list[Message] = []
    params: list[str] = []
    for i, item in enumerate(raw):
        param = f"input[{i}]"
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind == "message":
            messages.append(parse_message(item, param))
        elif kind == "function_call":
            assert isinstance(item, dict)
            call = _function_call(item, param)
            last = messages[-1] if messages else None
            # Consecutive calls are one assistant turn, as in the chat API.
            if last is not None and last.role == "assistant" and last.tool_calls and params[-1].endswith("#calls"):
                last.tool_calls.append(call)
                continue
            messages.append(Message(role="assistant", content=None, tool_calls=[call]))
            param += "#calls"
        elif kind == "function_call_output":
            assert isinstance(item, dict)
            messages.append(_function_output(item, param))
        else:
            raise ParamError(f"{param}.type", f"unsupported input item type {kind!r}")
        params.append(param)
    return messages, [p.removesuffix("#calls") for p in params]


def parse_responses_request(body: dict[str, Any], reserved: tuple[str, ...] = ()) -> ResponsesRequest:
    model = body.get("model")
    assert isinstance(model, str)  # check_model ran first
    messages, params = parse_input(body.get("input"))
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise ParamError("instructions", "'instructions' must be a string")
    previous = body.get("previous_response_id")
    if previous is not None and not isinstance(previous, str):
        raise ParamError("previous_response_id", "'previous_response_id' must be a string")
    if not flag(body, "parallel_tool_calls", True):
        raise ParamError("parallel_tool_calls", "'parallel_tool_calls': false is not supported")
    fmt = body.get("text", {}).get("format") if isinstance(body.get("text"), dict) else body.get("text")
    if fmt is not None and fmt != {"type": "text"}:
        raise ParamError("text.format", "only the text format is supported")
    if flag(body, "background", False):
        raise ParamError("background", "background responses are not supported")
    tools = parse_tools(body.get("tools"), body.get("tool_choice"), reserved, flat=True)
    return ResponsesRequest(
        model, messages, params, instructions, previous, flag(body, "store", True), flag(body, "stream", False), tools
    )


def conversation_of(response_id: str) -> str | None:
    """The conversation a response id belongs to (None for ids we never issued)."""
    hexpart = response_id[len(_PREFIX) : len(_PREFIX) + 32]
    if not response_id.startswith(_PREFIX):
        return None
    try:
        return str(uuid.UUID(hex=hexpart))
    except ValueError:
        return None


def new_response_id(conversation_id: str | None) -> str:
    base = uuid.UUID(conversation_id).hex if conversation_id else uuid.uuid4().hex
    return f"{_PREFIX}{base}{secrets.token_hex(6)}"


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def call_item(call: ToolCall) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{uuid.uuid4().hex}",
        "call_id": call.id,
        "name": call.function.name,
        "arguments": call.function.arguments,
        "status": "completed",
    }


@dataclass
class Turn:
    """One response being produced: what the handler and the stream share."""

    id: str
    created: int
    req: ResponsesRequest
    conversation_id: str | None  # where the turn is stored (None with store: false)
    input: Message
    history: list[Message]
    info: RunInfo
    overlay: RunOverlay

    def body(self, status: str, output: list[dict[str, Any]], error: dict[str, str] | None = None) -> dict[str, Any]:
        spec = self.req.tools
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "model": self.req.model,
            "output": output,
            "previous_response_id": self.req.previous_response_id,
            "instructions": self.req.instructions,
            "tools": [{"type": "function", **t["function"], "strict": False} for t in spec.tools],
            "tool_choice": spec.choice,
            "parallel_tool_calls": True,
            "store": self.req.store,
            "error": error,
            "incomplete_details": None,
            "metadata": {},
            "text": {"format": {"type": "text"}},
            "usage": usage_body(self.info.usage) if status == "completed" else None,
        }

    @property
    def calls(self) -> list[ToolCall]:
        return self.overlay.calls

    async def store(self, ep: TFrameXEndpoint, text: str | None) -> None:
        if self.conversation_id is None:
            return
        reply = Message(role="assistant", content=text, tool_calls=self.calls or None)
        await ep.conversations.append(self.conversation_id, [*self.req.input, reply])
