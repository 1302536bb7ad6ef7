"""``Server-Timing``: each layer's own time for this request, opt-in (``server.server_timing``).

When it is on, the stack puts a :class:`Probe` in front of every layer and of the app, and a
:class:`ServerTimingMiddleware` outermost. Each probe notes the moment its layer (or the app) is
entered; when the response starts, the outermost layer turns the marks into one entry per layer
reached: ``authentication;dur=0.012`` is the time from entering authentication to entering the
next layer, and ``app;dur=…`` the time from entering the app to its ``http.response.start``. So a
user sees the stack's overhead per layer in a browser's devtools or with ``curl -i``.

Only the time before the response starts can go into a header; work a layer does after it (the
audit row, token charging) is not in it. When it is off the stack adds none of this: no probe, no
wrapped ``send``.
"""

from __future__ import annotations

from time import perf_counter

from tframex_asgi.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SCOPE_KEY", "Probe", "ServerTimingMiddleware", "format_timings"]

# The marks live in the scope (not on self: requests run concurrently). A list, so the shallow
# copies of the scope some layers and frameworks make still append to the same one.
SCOPE_KEY = "tframex.server_timing"


class Probe:
    """Notes when ``name`` (a layer, or ``app``) is entered for an HTTP request."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        marks = scope.get(SCOPE_KEY)
        if marks is not None:
            marks.append((self.name, perf_counter()))
        await self.app(scope, receive, send)


def format_timings(marks: list[tuple[str, float]], end: float) -> bytes:
    """``name;dur=MS`` per mark: the time until the next mark (the last one: until ``end``)."""
    parts = []
    for i, (name, start) in enumerate(marks):
        stop = marks[i + 1][1] if i + 1 < len(marks) else end
        parts.append(f"{name};dur={(stop - start) * 1000:.3f}")
    return ", ".join(parts).encode("ascii")


class ServerTimingMiddleware:
    """Outermost: gives the request its marks and adds the header to ``http.response.start``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        marks: list[tuple[str, float]] = []
        scope[SCOPE_KEY] = marks

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                value = format_timings(marks, perf_counter())
                # The app's own Server-Timing entries stay: the header may appear more than once.
                message = {**message, "headers": [*message.get("headers", ()), (b"server-timing", value)]}
            await send(message)

        await self.app(scope, receive, timed_send)
