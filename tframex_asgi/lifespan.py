"""Run our startup/shutdown around the wrapped app's own lifespan, which it may not support."""

from __future__ import annotations

import asyncio
import logging

from tframex_asgi.types import ASGIApp, Message, Scope

__all__ = ["InnerLifespan"]

logger = logging.getLogger("tframex_asgi.lifespan")


class InnerLifespan:
    """Drives the wrapped app's lifespan protocol from our side.

    An app that raises on (or returns from) the lifespan scope before answering startup does
    not support lifespan: that is fine and it gets no shutdown either.
    """

    def __init__(self, app: ASGIApp, scope: Scope) -> None:
        self.app = app
        self.scope = scope
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.supported = False

    async def _run(self) -> None:
        await self.app(self.scope, self._to_app.get, self._from_app.put)

    async def _answer(self) -> Message | None:
        """The app's next message, or None when the app stopped without one."""
        assert self._task is not None
        getter = asyncio.ensure_future(self._from_app.get())
        done, _ = await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        exc = self._task.exception()
        if exc is not None:
            logger.debug("wrapped app does not support lifespan: %r", exc)
        return None

    async def startup(self) -> str | None:
        """Start the app; returns a failure message, or None on success or no support."""
        self._task = asyncio.ensure_future(self._run())
        await self._to_app.put({"type": "lifespan.startup"})
        answer = await self._answer()
        if answer is None:
            return None
        if answer["type"] == "lifespan.startup.failed":
            return str(answer.get("message", "")) or "the wrapped app failed to start"
        self.supported = answer["type"] == "lifespan.startup.complete"
        return None

    async def shutdown(self) -> str | None:
        if not self.supported or self._task is None:
            return None
        await self._to_app.put({"type": "lifespan.shutdown"})
        answer = await self._answer()
        await asyncio.gather(self._task, return_exceptions=True)
        if answer is not None and answer["type"] == "lifespan.shutdown.failed":
            return str(answer.get("message", "")) or "the wrapped app failed to shut down"
        return None
