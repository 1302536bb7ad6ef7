"""Request body size limit: 413 before reading a body that is declared too large, and as soon as a
streamed (chunked) body crosses the limit, without reading the rest.

A declared ``Content-Length`` over the limit is refused before the app runs. Otherwise ``receive``
is wrapped and counts the bytes the app reads; the message that crosses the limit is never handed
to the app. Instead the 413 is sent right away (if the app has not started a response) and the app
sees :class:`PayloadTooLarge` raised from ``receive``; if it catches that, later ``receive`` calls
report a disconnect and whatever it sends is dropped, since the client already has its answer.

An HTTP/1.x request without ``Transfer-Encoding`` carries exactly its ``Content-Length`` (none:
no body at all, RFC 9112 section 6.3) and the server enforces that framing, so when that length is
within the limit the app is called with the server's own ``receive``: the common GET pays one
header scan. Chunked bodies, and HTTP/2 or 3 (where the length is only advisory), are counted.
"""

from __future__ import annotations

import logging

from tframex_asgi.context import get_state
from tframex_asgi.errors import TFrameXASGIError
from tframex_asgi.http import send_json_error
from tframex_asgi.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware", "PayloadTooLarge"]

logger = logging.getLogger("tframex_asgi.bodylimit")
# The rest of the body is never read: tell the server not to reuse the connection.
_CLOSE = [(b"connection", b"close")]


class PayloadTooLarge(TFrameXASGIError):
    code = "payload_too_large"
    status = 413


def _declared_length(scope: Scope) -> tuple[int | None, bool]:
    """(the Content-Length, ``-1`` when malformed or given twice with different values; whether a
    Transfer-Encoding header is present)."""
    found: int | None = None
    chunked = False
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.strip()
            if not text.isdigit():
                return -1, chunked
            length = int(text)
            if found is not None and found != length:
                return -1, chunked
            found = length
        elif name == b"transfer-encoding":
            chunked = True
    return found, chunked


# Versions whose framing the server enforces: the body is exactly the declared length.
_FRAMED = frozenset({"1.0", "1.1"})


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_body_bytes`` with a JSON 413."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = 10 * 1024 * 1024) -> None:
        # The stack passes SecurityConfig.max_body_bytes, checked there; this one comparison is
        # for the documented direct use (docs/rate-limiting.md), where no config is involved.
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")
        self.app = app
        self.limit = max_body_bytes

    async def _refuse(self, scope: Scope, send: Send) -> None:
        get_state(scope)["audit_reason"] = "payload_too_large"
        await send_json_error(send, 413, "payload_too_large", f"request body larger than {self.limit} bytes", _CLOSE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _declared_length(scope)
        if declared == -1:
            await send_json_error(send, 400, "invalid_request", "malformed Content-Length", _CLOSE)
            return
        if declared is not None and declared > self.limit:
            await self._refuse(scope, send)
            return
        if not chunked and scope.get("http_version") in _FRAMED:
            await self.app(scope, receive, send)  # at most ``declared`` bytes: within the limit
            return
        limit = self.limit
        received = 0
        started = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await self._refuse(scope, send)
                    raise PayloadTooLarge(f"request body larger than {limit} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused and not started:
                return  # the 413 went out already; the app's own answer is moot
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except PayloadTooLarge:
            if started:
                # The app had begun its response while still reading: nothing sane to send.
                raise
            logger.debug("request body over %d bytes refused", limit)
