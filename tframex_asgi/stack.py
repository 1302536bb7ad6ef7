"""Compose the layers of :mod:`tframex_asgi.layers` around any app and run their lifespan.

A disabled feature adds no layer at all: the request-context layer is there when another
layer or persistence needs it, or to echo the request id header; with every feature off and
``server.request_id_header: null`` the stack adds no layer.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Mapping
from typing import Any

from tframex_asgi.admin.bootstrap import announce_first_admin
from tframex_asgi.clock import Clock
from tframex_asgi.compat import Interface, as_asgi3
from tframex_asgi.config import EnterpriseConfig, load_config
from tframex_asgi.config.model import check_high_availability
from tframex_asgi.layers import LAYERS
from tframex_asgi.lifespan import InnerLifespan
from tframex_asgi.services import Services
from tframex_asgi.timing import Probe, ServerTimingMiddleware
from tframex_asgi.types import ASGIApp, Receive, Scope, Send

__all__ = ["LAYERS", "EnterpriseMiddleware", "EnterpriseStack", "bind_endpoints", "build_stack", "resolve_config"]

logger = logging.getLogger("tframex_asgi.stack")
ConfigLike = EnterpriseConfig | Mapping[str, Any] | str | os.PathLike[str] | None


def resolve_config(config: ConfigLike = None, **kwargs: Any) -> EnterpriseConfig:
    """An :class:`EnterpriseConfig` from a config object, a YAML path, a mapping holding the
    ``enterprise:`` block contents, or the seed's ``TFrameXApp`` keyword names."""
    if config is not None and kwargs:
        raise TypeError("pass either config or keyword settings, not both")
    if isinstance(config, EnterpriseConfig):
        return config
    if isinstance(config, str | os.PathLike):
        return load_config(config)
    if isinstance(config, Mapping):
        body = config.get("enterprise", config) if set(config) == {"enterprise"} else config
        return EnterpriseConfig.from_mapping(body)
    return EnterpriseConfig.from_kwargs(**kwargs)


def bind_endpoints(app: Any, services: Services, depth: int = 12) -> int:
    """Hand ``services`` to every TFrameX endpoint inside ``app``: the app itself, or one mounted
    in a Starlette/FastAPI router or behind other middlewares (found through ``.app`` and
    ``.routes``). Returns how many were bound."""
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(app, 0)]
    bound = 0
    while stack:
        obj, level = stack.pop()
        if obj is None or id(obj) in seen or level > depth:
            continue
        seen.add(id(obj))
        bind = getattr(obj, "bind_services", None)
        if callable(bind):
            bind(services)
            bound += 1
            continue
        for attr in ("app", "router", "_app", "asgi_app"):
            child = getattr(obj, attr, None)
            if child is not None and not isinstance(child, type):
                stack.append((child, level + 1))
        routes = getattr(obj, "routes", None)
        if isinstance(routes, list | tuple):
            stack.extend((getattr(route, "app", None), level + 1) for route in routes)
    return bound


def build_layers(app: ASGIApp, services: Services) -> tuple[ASGIApp, tuple[str, ...]]:
    """``app`` wrapped in the layers its config enables, and their names (outermost first)."""
    bind_endpoints(app, services)
    services.backup  # noqa: B018 - the scheduled S3 backup (when configured) is a part, not a layer
    names: list[str] = []
    # Server-Timing (opt-in): a probe in front of the app and of every layer; off, nothing added.
    timed = services.config.server.server_timing
    if timed:
        app = Probe(app, "app")
    for layer in reversed(LAYERS):
        if layer.wanted(services.config):
            wrapped = layer.build(app, services)
            app = Probe(wrapped, layer.name) if timed else wrapped
            names.append(layer.name)
    if timed:
        app = ServerTimingMiddleware(app)
    return app, tuple(reversed(names))


class EnterpriseStack:
    """The wrapped app: an ASGI 3 callable that also owns the lifespan of our services.

    Use it as a server's app, as ``app.add_middleware(EnterpriseMiddleware, ...)`` in
    Starlette/FastAPI, or ``async with stack:`` in tests (ASGI transports that run no lifespan).
    ``bootstrap_admin=True``: on first start (no users stored yet) create an ``admin`` user and
    print its API key once, as ``tframex-asgi serve`` does. ``tracer_provider`` /
    ``meter_provider``: your own OpenTelemetry providers, used as they are.
    ``stack.services`` holds the live parts (``.identity``, ``.rbac``, ``.audit``, ...).
    """

    def __init__(
        self,
        app: Any,
        config: ConfigLike = None,
        *,
        services: Services | None = None,
        clock: Clock | None = None,
        interface: Interface = "auto",
        bootstrap_admin: bool = False,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        **settings: Any,
    ) -> None:
        if services is not None and (clock is not None or tracer_provider is not None or meter_provider is not None):
            raise TypeError("pass clock, tracer_provider and meter_provider to Services(...), not with services=")
        cfg = services.config if services is not None and config is None else resolve_config(config, **settings)
        check_high_availability(cfg, "enterprise")  # also for a config constructed directly
        self.config = cfg
        self.services = services or Services(
            cfg, clock=clock, tracer_provider=tracer_provider, meter_provider=meter_provider
        )
        self.inner = as_asgi3(app, interface)
        self.app, self.layers = build_layers(self.inner, self.services)
        if bootstrap_admin:
            # First start: create an admin and print its API key once (as `tframex-asgi serve`).
            announce_first_admin(self.services)
        self._start_lock = asyncio.Lock()
        self._warned_lazy = False

    async def startup(self) -> None:
        await self.services.startup()

    async def shutdown(self) -> None:
        await self.services.shutdown()

    async def __aenter__(self) -> EnterpriseStack:
        await self.startup()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    async def _ensure_started(self) -> None:
        async with self._start_lock:
            if self.services.started:
                return
            if not self._warned_lazy:
                self._warned_lazy = True
                logger.warning("no lifespan startup was received: starting services on the first request")
            await self.startup()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Hot path first: one attribute read and one comparison per request once started.
        if self.services.started and scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        await self._ensure_started()
        await self.app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            await self.startup()
        except Exception as exc:
            logger.exception("tframex-asgi startup failed")
            await send({"type": "lifespan.startup.failed", "message": f"tframex-asgi startup failed: {exc}"})
            return
        inner = InnerLifespan(self.app, scope)
        failure = await inner.startup()
        if failure is not None:
            await self.shutdown()
            await send({"type": "lifespan.startup.failed", "message": failure})
            return
        if self.config.server.gc_freeze:
            freeze_startup_objects()
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        failure = await inner.shutdown()
        await self.shutdown()
        if failure is not None:
            await send({"type": "lifespan.shutdown.failed", "message": failure})
        else:
            await send({"type": "lifespan.shutdown.complete"})


def freeze_startup_objects() -> None:
    """Collect once, then move every object alive into the permanent generation (``gc.freeze``).

    What a server builds at startup (modules, classes, functions, pools, caches) lives until
    exit, yet every full collection walks it again: with Redis and PostgreSQL clients loaded,
    80k objects and 20-40 ms with the event loop stopped, several times a second under load.
    Frozen, a full collection walks only what was made since."""
    gc.collect()
    gc.freeze()


def build_stack(app: Any, config: ConfigLike = None, **kwargs: Any) -> EnterpriseStack:
    """Wrap ``app`` (ASGI 3, ASGI 2 or WSGI) in the enabled layers. See :class:`EnterpriseStack`."""
    return EnterpriseStack(app, config, **kwargs)


# Starlette/FastAPI: app.add_middleware(EnterpriseMiddleware, config="enterprise.yaml")
EnterpriseMiddleware = EnterpriseStack
