"""Server-sent events: the framing, and a streaming response that knows when the client left.

Why not Starlette's ``StreamingResponse``: when the client disconnects it cancels the stream
through an anyio cancel scope and then returns as if the response had completed. The run then
ended with ``CancelledError: Cancelled via cancel scope 7f…`` (memory addresses) as its error, the
audit row said success, and nothing downstream could tell a dropped client from a finished
stream. :class:`EventStream` watches for ``http.disconnect`` itself (and for a ``send`` that fails,
as ASGI 2.4 servers do), cancels the producer with :data:`DISCONNECTED` as the message, lets its
cleanup run (the engine records the run as ``cancelled`` with what it produced, the handler
stores the messages so far), and marks the request ``audit_reason = "cancelled"``. It returns
normally afterwards, so the layers outside (the token charge of the rate limiter) see the end of
the response as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from tframex_asgi.context import get_state
from tframex_asgi.types import Message, Receive, Scope, Send

__all__ = ["DISCONNECTED", "SSE_HEADERS", "EventStream", "end_with", "is_disconnect", "sse"]

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
# The cancel message of a stream whose client went away (see is_disconnect).
DISCONNECTED = "tframex-asgi: client disconnected"


def sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), default=str)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` is the cancellation :class:`EventStream` sends when the client left."""
    return isinstance(exc, asyncio.CancelledError) and DISCONNECTED in exc.args


async def end_with(stream: AsyncIterator[Any], exc: BaseException) -> None:
    """End ``stream`` (an async generator waiting at a yield) by raising ``exc`` inside it, so it
    records the same cause; a generator already finished, or running, is left alone. Without
    this, an abandoned generator is closed by the garbage collector later, in another context."""
    if getattr(stream, "ag_frame", None) is not None and not getattr(stream, "ag_running", False):
        with contextlib.suppress(BaseException):
            await stream.athrow(exc)  # type: ignore[attr-defined]


class _Gone(Exception):
    """``send`` failed: the client is gone (ASGI 2.4 servers raise OSError instead of ignoring)."""


class EventStream:
    """An ASGI response streaming ``events`` (bytes) as ``text/event-stream``."""

    def __init__(self, events: AsyncIterator[bytes], headers: Mapping[str, str] | None = None) -> None:
        self.events = events
        self.headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
        self.headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        left = asyncio.Event()  # set when the client went away before the stream ended
        producer = asyncio.create_task(self._produce(send))
        watcher = asyncio.create_task(self._watch(receive, producer, left))
        try:
            await asyncio.wait({producer})  # never raises: the outcome is read below
        except asyncio.CancelledError:
            # We ourselves were cancelled (server shutdown): stop the stream too, then go on.
            producer.cancel()
            await asyncio.wait({producer})
            raise
        finally:
            watcher.cancel()
        if left.is_set() or producer.cancelled() or isinstance(producer.exception(), _Gone):
            get_state(scope)["audit_reason"] = "cancelled"
            return
        exc = producer.exception()
        if exc is not None:
            raise exc

    async def _produce(self, send: Send) -> None:
        async def emit(message: Message) -> None:
            try:
                await send(message)
            except OSError as exc:
                raise _Gone from exc

        events = self.events
        try:
            await emit({"type": "http.response.start", "status": 200, "headers": self.headers})
            async for chunk in events:
                await emit({"type": "http.response.body", "body": chunk, "more_body": True})
            await emit({"type": "http.response.body", "body": b"", "more_body": False})
        except (asyncio.CancelledError, _Gone) as exc:
            # Interrupted in send, not inside the generator: it waits at a yield and would only
            # be closed by the garbage collector, later and elsewhere. End it here, the same
            # way as a cancellation inside it, so the run's cleanup runs now.
            args = exc.args if isinstance(exc, asyncio.CancelledError) else (DISCONNECTED,)
            await end_with(events, asyncio.CancelledError(*args))
            raise

    @staticmethod
    async def _watch(receive: Receive, producer: asyncio.Task[None], left: asyncio.Event) -> None:
        """Wait for ``http.disconnect`` and cancel the producer if it is still streaming."""
        while True:
            try:
                message = await receive()
            except Exception:  # a server that cannot tell us: the stream just runs to its end
                return
            if message["type"] == "http.disconnect":
                if not producer.done():
                    left.set()
                    producer.cancel(DISCONNECTED)
                return
