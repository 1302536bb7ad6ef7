"""The TFrameX endpoint: a pure ASGI app serving a ``TFrameXApp``'s agents, tools and flows.

Routes (permission enforced by the authorization layer, see DESIGN.md): GET /healthz, /readyz;
GET /agents, POST /agents/{name}/run; GET /tools, POST /tools/{name}/call; GET /flows,
POST /flows/{name}/run; GET/DELETE /conversations[/{id}]; the OpenAI-compatible
POST /v1/chat/completions, POST /v1/responses, GET /v1/models[/{id}]; plus the stack's own
routes in ``services.routes`` (admin, metrics, audit).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, Router
from tframex import TFrameXApp

from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.context import get_state
from tframex_asgi.endpoint import handlers
from tframex_asgi.endpoint.conversations import ConversationStore, conversation_cache
from tframex_asgi.endpoint.openai import chat, models, responses_route
from tframex_asgi.endpoint.openai.errors import OPENAI_PREFIX, openai_error, openai_error_response
from tframex_asgi.endpoint.recorder import enable_recording
from tframex_asgi.endpoint.runner import AgentRunner
from tframex_asgi.errors import TFrameXASGIError
from tframex_asgi.mcp.capture import install as _install_mcp_capture
from tframex_asgi.mcp.wiring import hub_for
from tframex_asgi.rbac.resources import ResourceGuard
from tframex_asgi.services import Services
from tframex_asgi.types import Receive, Scope, Send

__all__ = ["TFrameXEndpoint", "create_app"]

logger = logging.getLogger("tframex_asgi.endpoint")
# Apps built after this import keep their mcp_config_file even outside an event loop.
_install_mcp_capture()
Handler = Callable[[Request, "TFrameXEndpoint"], Awaitable[Response]]


def error_response(exc: TFrameXASGIError) -> JSONResponse:
    return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status)


class TFrameXEndpoint:
    """Serve ``app`` over HTTP. Wrap it with :func:`tframex_asgi.build_stack` for the
    enterprise layers; alone it runs with an in-memory conversation store and no security.

    ``mcp_config_file`` overrides the app's own (needed only for an app built before
    ``tframex_asgi.endpoint`` was imported, outside an event loop: tframex forgot it then)."""

    def __init__(
        self, app: TFrameXApp, *, services: Services | None = None, mcp_config_file: str | None = None
    ) -> None:
        if not isinstance(app, TFrameXApp):
            raise TypeError(f"expected a tframex.TFrameXApp, got {type(app).__name__}")
        self.tframex = app
        self.mcp_config_file = mcp_config_file
        self._services = services
        self._owns_services = services is None
        self._router: Router | None = None
        self._runner: AgentRunner | None = None
        self.models_created: int | None = None  # GET /v1/models' "created": first asked
        if services is not None:
            self._attach_mcp(services)

    # -- wiring -------------------------------------------------------------------------

    def bind_services(self, services: Services) -> None:
        """Called by the stack before it builds its layers (so before startup)."""
        self._services = services
        self._owns_services = False
        self._router = None
        self._runner = None
        # The stack reshapes its own errors (401/403/413/429) for these paths, see context.py.
        services.openai_prefix = OPENAI_PREFIX
        self._attach_mcp(services)
        if services.config.persistence.enabled:
            enable_recording(services)

    def _attach_mcp(self, services: Services) -> None:
        """Give ``services`` the hub of this app's MCP servers (the first endpoint's wins),
        started and stopped with them."""
        if services.mcp is not None:
            return
        hub = hub_for(self.tframex, services.clock, lambda: services.built("metrics"), self.mcp_config_file)
        if hub is not None:
            services.mcp = hub
            services.on_startup(hub.start)
            services.on_shutdown(hub.stop)

    @property
    def services(self) -> Services:
        if self._services is None:
            self._services = Services(EnterpriseConfig.from_kwargs(enable_security=False))
            self._attach_mcp(self._services)
        return self._services

    @property
    def runner(self) -> AgentRunner:
        if self._runner is None:
            self._runner = AgentRunner(
                self.tframex,
                events=self.services.events,
                clock=self.services.clock,
                history_limit=self.services.config.server.history_limit,
                guard=ResourceGuard.for_config(self.services.config),
                mcp=self.services.mcp,
            )
        return self._runner

    @property
    def conversations(self) -> ConversationStore:
        return ConversationStore(self.services.storage, self.services.clock, conversation_cache(self.services))

    def _route(self, path: str, handler: Handler, methods: list[str]) -> Route:
        # OpenAI clients read OpenAI's error shape (a superset of ours) on /v1.
        to_response = openai_error_response if path.startswith(OPENAI_PREFIX) else error_response

        async def endpoint(request: Request) -> Response:
            get_state(request.scope)["route"] = path
            try:
                return await handler(request, self)
            except TFrameXASGIError as exc:
                return to_response(exc)

        return Route(path, endpoint, methods=methods)

    def routes(self) -> list[BaseRoute]:
        r = self._route
        own: list[BaseRoute] = [
            r("/healthz", handlers.healthz, ["GET"]),
            r("/readyz", handlers.readyz, ["GET"]),
            r("/agents", handlers.list_agents, ["GET"]),
            r("/agents/{name}/run", handlers.run_agent, ["POST"]),
            r("/tools", handlers.list_tools, ["GET"]),
            r("/tools/{name}/call", handlers.call_tool, ["POST"]),
            r("/flows", handlers.list_flows, ["GET"]),
            r("/flows/{name}/run", handlers.run_flow, ["POST"]),
            r("/conversations", handlers.list_conversations, ["GET"]),
            r("/conversations/{id}", handlers.get_conversation, ["GET"]),
            r("/conversations/{id}", handlers.delete_conversation, ["DELETE"]),
            r("/v1/chat/completions", chat.chat_completions, ["POST"]),
            r("/v1/responses", responses_route.create_response, ["POST"]),
            r("/v1/models", models.list_models, ["GET"]),
            r("/v1/models/{id}", models.get_model, ["GET"]),
        ]
        return own + list(self.services.routes)

    async def _not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        get_state(scope)["route"] = "<unmatched>"
        body: dict[str, Any] = {"error": {"code": "not_found", "message": "no such route"}}
        if str(scope.get("path", "")).startswith(OPENAI_PREFIX):
            body = openai_error(404, "not_found", "no such route")
        response = JSONResponse(body, status_code=404)
        await response(scope, receive, send)

    # -- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self._owns_services and not self.services.started:
            await self.services.startup()
        if self._router is None:
            self._router = Router(routes=self.routes(), default=self._not_found)
        await self._router(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    # MCP servers start and stop with the services (see tframex_asgi.mcp).
                    if self._owns_services:
                        await self.services.startup()
                except Exception as exc:
                    logger.exception("endpoint startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._owns_services:
                    await self.services.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(app: TFrameXApp, config: Any = None, **settings: Any) -> Any:
    """The endpoint for ``app`` wrapped in the enterprise stack (config as for build_stack)."""
    from tframex_asgi.stack import build_stack

    return build_stack(TFrameXEndpoint(app), config, **settings)
