"""OpenAI chat messages and client tools in, tframex ``Message`` objects out.

Shared by ``/v1/chat/completions`` and ``/v1/responses`` (which converts its input items to the
same messages first). Every refusal is a :class:`ParamError` naming the offending parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tframex import Message
from tframex.models.primitives import FunctionCall, ToolCall

from tframex_asgi.endpoint.openai.errors import ParamError

__all__ = ["ClientToolSpec", "parse_message", "parse_tool_choice", "parse_tools", "split_turn", "text_content"]

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Text parts of the chat API ("text") and of the Responses API ("input_text"/"output_text").
_TEXT_PARTS = ("text", "input_text", "output_text")


@dataclass(frozen=True)
class ClientToolSpec:
    """The caller's function tools (chat-completions shape) and how the model may use them."""

    tools: tuple[dict[str, Any], ...] = ()
    choice: str = "auto"

    @property
    def names(self) -> frozenset[str]:
        return frozenset(t["function"]["name"] for t in self.tools)

    @property
    def offered(self) -> bool:
        return bool(self.tools) and self.choice != "none"


def text_content(content: Any, param: str) -> str | None:
    """A message's text: a string, or a list of text parts joined. Other parts are refused
    (an image dropped on the floor would be an answer to a question nobody asked)."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ParamError(param, f"'{param}' must be a string or a list of text parts")
    parts: list[str] = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS or not isinstance(part.get("text"), str):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise ParamError(f"{param}[{j}]", f"only text content parts are supported, not {kind!r}")
        parts.append(part["text"])
    return "".join(parts)


def _tool_calls(raw: Any, param: str) -> list[ToolCall]:
    if not isinstance(raw, list) or not raw:
        raise ParamError(param, f"'{param}' must be a non-empty list")
    calls = []
    for j, call in enumerate(raw):
        fn = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(fn, dict)
            or not isinstance(call.get("id"), str)
            or not isinstance(fn.get("name"), str)
            or not isinstance(fn.get("arguments", ""), str)
        ):
            raise ParamError(
                f"{param}[{j}]", "a tool call needs an 'id' and a 'function' with a 'name' and string 'arguments'"
            )
        calls.append(ToolCall(id=call["id"], function=FunctionCall(name=fn["name"], arguments=fn.get("arguments", ""))))
    return calls


def parse_message(m: Any, param: str) -> Message:
    """One chat message; ``developer`` (the newer name) counts as ``system``."""
    role = m.get("role") if isinstance(m, dict) else None
    if role not in ("system", "developer", "user", "assistant", "tool"):
        raise ParamError(f"{param}.role", f"{param} must be an object with a role of system, user, assistant or tool")
    content = text_content(m.get("content"), f"{param}.content")
    if role == "tool":
        call_id = m.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise ParamError(f"{param}.tool_call_id", "a tool message needs the 'tool_call_id' it answers")
        return Message(role="tool", content=content or "", tool_call_id=call_id)
    if role == "assistant" and m.get("tool_calls") is not None:
        return Message(
            role="assistant", content=content, tool_calls=_tool_calls(m["tool_calls"], f"{param}.tool_calls")
        )
    if content is None:
        raise ParamError(f"{param}.content", f"{param} needs a 'content'")
    return Message(role="system" if role == "developer" else role, content=content)


def link_tool_results(messages: Sequence[Message], params: Sequence[str], call_field: str = "tool_call_id") -> None:
    """Give each tool result the name of the call it answers (LLMs and tframex want it);
    a result answering no earlier call is refused."""
    names: dict[str, str] = {}
    for m, param in zip(messages, params, strict=True):
        for call in m.tool_calls or ():
            names[call.id] = call.function.name
        if m.role == "tool":
            if m.tool_call_id not in names:
                raise ParamError(f"{param}.{call_field}", f"no earlier tool call has the id {m.tool_call_id!r}")
            m.name = names[m.tool_call_id]


def split_turn(
    messages: list[Message], params: Sequence[str], what: str, call_field: str = "tool_call_id"
) -> tuple[Message, list[Message]]:
    """(the input of this turn, the history before it): a turn ends on a user message or a tool result."""
    if not messages:
        raise ParamError(what, f"'{what}' must not be empty")
    link_tool_results(messages, params, call_field)
    last = messages[-1]
    if last.role not in ("user", "tool"):
        raise ParamError(what, "the last message must be from the user or a tool result")
    return last, messages[:-1]


def _function(raw: Any, param: str, flat: bool) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("type") != "function":
        raise ParamError(param, "only tools of type 'function' are supported")
    fn = raw if flat else raw.get("function")
    if not isinstance(fn, dict):
        raise ParamError(f"{param}.function", "a function tool needs a 'function' object")
    name = fn.get("name")
    where = f"{param}.name" if flat else f"{param}.function.name"
    if not isinstance(name, str) or not _TOOL_NAME.match(name):
        raise ParamError(where, "a tool name is 1-64 letters, digits, '_' or '-'")
    params = fn.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(params, dict):
        raise ParamError(where.replace(".name", ".parameters"), "'parameters' must be a JSON schema object")
    spec: dict[str, Any] = {"name": name, "parameters": params}
    if isinstance(fn.get("description"), str):
        spec["description"] = fn["description"]
    return {"type": "function", "function": spec}


def parse_tool_choice(raw: Any) -> str:
    """``auto`` and ``none`` are honoured; forcing a call is refused rather than ignored: the agent
    runs its own tool loop, and a forced call on every step would never let it answer."""
    if raw is None:
        return "auto"
    if raw in ("auto", "none"):
        return str(raw)
    raise ParamError("tool_choice", "only 'auto' and 'none' are supported for 'tool_choice'")


def parse_tools(raw: Any, choice: Any, reserved: Iterable[str], *, flat: bool = False) -> ClientToolSpec:
    """The caller's tools; ``flat`` is the Responses API's ``{"type", "name", ...}`` form.
    Names the agent already uses for its own tools are refused (a call would be ambiguous)."""
    tool_choice = parse_tool_choice(choice)
    if raw is None:
        return ClientToolSpec((), tool_choice)
    if not isinstance(raw, list):
        raise ParamError("tools", "'tools' must be a list")
    taken = set(reserved)
    tools: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        tool = _function(item, f"tools[{i}]", flat)
        name = tool["function"]["name"]
        if name in taken:
            where = f"tools[{i}].name" if flat else f"tools[{i}].function.name"
            raise ParamError(where, f"the tool name {name!r} is already used by the agent or another tool")
        taken.add(name)
        tools.append(tool)
    return ClientToolSpec(tuple(tools), tool_choice)
