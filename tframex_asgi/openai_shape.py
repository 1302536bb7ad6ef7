"""OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}`` (no Starlette here).

SDKs read ``type`` and ``param`` into their exception objects (``openai.BadRequestError.type``);
``code`` keeps our machine-readable code, so the body is a superset of the package's usual
``{"error": {"code", "message"}}``. The request-context layer wraps ``send`` with
:func:`openai_error_send` for ``/v1/`` paths when the TFrameX endpoint is served, so errors of
the middlewares (401/403/413/429) leave in this shape too.
"""

from __future__ import annotations

import json
from typing import Any

from tframex_asgi.types import Message, Send

__all__ = ["OPENAI_PREFIX", "error_type", "openai_error", "openai_error_send"]

OPENAI_PREFIX = "/v1/"

# The type strings OpenAI's API uses, by status.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "unprocessable_entity_error",
    429: "rate_limit_error",
}


def error_type(status: int) -> str:
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def openai_error(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}


def _reshape(body: bytes, status: int) -> bytes | None:
    """Our ``{"error": {"code", "message"}}`` in OpenAI's shape; None for any other body."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict) or "type" in err or set(err) != {"code", "message"}:
        return None
    shaped = openai_error(status, str(err["code"]), str(err["message"]))
    return json.dumps(shaped, separators=(",", ":")).encode()


def openai_error_send(send: Send) -> Send:
    """Wrap ``send`` so JSON error responses in our shape leave in OpenAI's.

    Only single-message bodies (every middleware error is one) are rewritten: a streamed body is
    passed through untouched, never buffered."""
    pending: list[Message] = []

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            status = message["status"]
            ctype = next((v for k, v in message.get("headers", ()) if k.lower() == b"content-type"), b"")
            if status >= 400 and ctype.startswith(b"application/json"):
                pending.append(message)
                return
        elif message["type"] == "http.response.body" and pending:
            start = pending.pop()
            body = message.get("body", b"")
            shaped = None if message.get("more_body") else _reshape(body, start["status"])
            if shaped is not None:
                headers = [(k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(shaped)).encode()))
                start = {**start, "headers": headers}
                message = {**message, "body": shaped}
            await send(start)
        await send(message)

    return wrapped
