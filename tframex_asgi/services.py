"""Live collaborators shared by the layers of one stack, started and stopped by lifespan.

Config is frozen data; everything that holds a connection, a clock or a registry lives here
and is passed to the layers when the stack is built.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tframex_asgi.clock import Clock, SystemClock
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.events import EventBus

if TYPE_CHECKING:
    from tframex_asgi.storage.base import BaseStorage

__all__ = ["Services"]

logger = logging.getLogger("tframex_asgi.services")
Hook = Callable[[], Awaitable[None]]


class Services:
    def __init__(
        self,
        config: EnterpriseConfig,
        *,
        clock: Clock | None = None,
        events: EventBus | None = None,
        storage: BaseStorage | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.events = events or EventBus()
        self._storage = storage
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        # Feature-owned shared objects by name ("rbac", "metrics", "writer", ...).
        self.extras: dict[str, Any] = {}
        self.started = False

    @property
    def storage(self) -> BaseStorage:
        """The configured storage (persistence on), else a process-local memory store.

        Created on first use and opened at startup; users, roles and keys need somewhere to
        live even when persistence is off.
        """
        if self._storage is None:
            from tframex_asgi.storage import open_storage

            url = self.config.persistence.url if self.config.persistence.enabled else "memory://"
            self._storage = open_storage(url, self.config.persistence)
            storage = self._storage
            self.on_startup(storage.connect)
            self.on_shutdown(storage.close)
        return self._storage

    def on_startup(self, hook: Hook) -> None:
        self._startup.append(hook)

    def on_shutdown(self, hook: Hook) -> None:
        self._shutdown.append(hook)

    async def startup(self) -> None:
        if self.started:
            return
        try:
            for hook in list(self._startup):
                await hook()
        except BaseException:
            # Shutdown hooks must tolerate a component that never started.
            await self._run_shutdown()
            raise
        self.started = True

    async def shutdown(self) -> None:
        if not self.started:
            return
        self.started = False
        await self._run_shutdown()

    async def _run_shutdown(self) -> None:
        # Reverse order: layers registered later depend on the ones registered earlier.
        for hook in reversed(self._shutdown):
            try:
                await hook()
            except Exception:
                logger.exception("shutdown hook %r failed", hook)
