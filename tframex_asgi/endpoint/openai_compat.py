"""``POST /v1/chat/completions``: OpenAI's chat API with ``model`` naming an agent."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tframex import Message

from tframex_asgi.errors import ValidationError

__all__ = ["chunk", "completion", "parse_chat_request"]

_ROLES = ("system", "user", "assistant")


def parse_chat_request(body: Any) -> tuple[str, str, list[Message], bool]:
    """(agent name, last user text, earlier messages, stream) from a chat.completions body."""
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValidationError("'model' (the agent name) is required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValidationError("'messages' must be a non-empty list")
    parsed: list[Message] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in (*_ROLES, "tool"):
            raise ValidationError(f"messages[{i}] must be an object with a role of system, user or assistant")
        content = m.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if content is not None and not isinstance(content, str):
            raise ValidationError(f"messages[{i}].content must be a string")
        if m["role"] in _ROLES:
            parsed.append(Message(role=m["role"], content=content))
    if not parsed or parsed[-1].role != "user":
        raise ValidationError("the last message must have the role 'user'")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ValidationError("'stream' must be true or false")
    return model, parsed[-1].content or "", [m for m in parsed[:-1] if m.role != "system"], stream


def completion(model: str, content: str | None, usage: Any) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
    }


def chunk(completion_id: str, model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
