"""Runs agents, tools and flows of a ``TFrameXApp`` for one request each, without cross-talk.

Every request gets its own runtime context and engine (so its own agent instances and memory).
The context is never entered or exited: tframex's ``__aexit__`` closes the LLM client that all
concurrent requests share.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from tframex import FlowContext, Message, MessageChunk, TFrameXApp, TFrameXRuntimeContext

from tframex_asgi.clock import Clock, SystemClock
from tframex_asgi.endpoint.engine import InstrumentedEngine
from tframex_asgi.endpoint.flows import run_flow
from tframex_asgi.endpoint.openai.overlay import RunOverlay
from tframex_asgi.endpoint.runctx import current_run, run_vars
from tframex_asgi.endpoint.sse import end_with
from tframex_asgi.endpoint.toolargs import check_arguments
from tframex_asgi.errors import AuthorizationError, NotFoundError, ServiceUnavailableError, ValidationError
from tframex_asgi.events import EventBus, RunInfo
from tframex_asgi.mcp.hub import MCPHub, Unavailable
from tframex_asgi.rbac.resources import ResourceGuard, ResourceKind

__all__ = ["AgentRunner"]


class AgentRunner:
    def __init__(
        self,
        app: TFrameXApp,
        *,
        events: EventBus | None = None,
        clock: Clock | None = None,
        history_limit: int = 20,
        guard: ResourceGuard | None = None,
        mcp: MCPHub | None = None,
    ) -> None:
        self.app = app
        self.events = events or EventBus()
        self.clock = clock or SystemClock()
        self.history_limit = history_limit
        self.guard = guard
        self.mcp = mcp

    def _engine(self, history: dict[str, list[Message]] | None = None) -> InstrumentedEngine:
        # The hub stands in for tframex's MCPManager, which is never started here (see tframex_asgi.mcp).
        ctx = TFrameXRuntimeContext(self.app, llm=self.app.default_llm, mcp_manager=self.mcp)
        engine = InstrumentedEngine(
            self.app,
            ctx,
            events=self.events,
            clock=self.clock,
            history=history,
            history_limit=self.history_limit,
            guard=self.guard,
        )
        ctx.engine = engine
        return engine

    def _agent(self, name: str) -> None:
        if name not in self.app._agents:
            raise NotFoundError(f"no agent named {name!r}")

    def _prepare(self, name: str, history: Sequence[Message], overlay: RunOverlay | None) -> InstrumentedEngine:
        self._agent(name)
        engine = self._engine({name: list(history)})
        if overlay is not None and overlay.needed:
            overlay.install(engine._get_agent_instance(name))
        return engine

    async def run_agent(
        self,
        name: str,
        text: str | Message,
        info: RunInfo,
        history: Sequence[Message] = (),
        overlay: RunOverlay | None = None,
    ) -> Message:
        """Run agent ``name`` on ``text`` (a user message, or a tool result ending a turn);
        ``overlay`` adds an OpenAI client's tools and instructions to this run only."""
        engine = self._prepare(name, history, overlay)
        with run_vars(info):
            result: Message = await engine.call_agent(name, _message(text))
            return result

    async def stream_agent(
        self,
        name: str,
        text: str | Message,
        info: RunInfo,
        history: Sequence[Message] = (),
        overlay: RunOverlay | None = None,
    ) -> AsyncGenerator[MessageChunk, None]:
        """Chunks of the agent's answer as they arrive (call after checking the agent exists)."""
        stream = self._prepare(name, history, overlay).call_agent_stream(name, _message(text))
        try:
            while True:
                # Set per step: the consumer may drive the generator from another task.
                with run_vars(info):
                    try:
                        chunk = await stream.__anext__()
                    except StopAsyncIteration:
                        return
                try:
                    yield chunk
                except asyncio.CancelledError as exc:
                    # Cancelled while waiting at the yield (the client left between two chunks):
                    # end the engine's stream with the same cause, so it records the same outcome.
                    with run_vars(info):
                        await end_with(stream, exc)
                    raise
        finally:
            # Closed early (the client left while we waited at the yield): the engine records
            # the run and the LLM its usage in this step, so they need the run's vars as well.
            with run_vars(info):
                await stream.aclose()

    def check_agent(self, name: str, info: RunInfo | None = None) -> None:
        """NotFoundError for an unknown agent; with ``info``, AuthorizationError when its caller
        may not run it (so a refused stream is a 403, not an error event after a 200)."""
        self._agent(name)
        if info is not None:
            self.authorize("agent", name, info)

    def authorize(self, kind: ResourceKind, name: str, info: RunInfo) -> None:
        """The resource guard's answer for ``info``'s caller (the engine asks it again at run time)."""
        if self.guard is not None:
            self.guard.check(kind, name, info.permissions)

    def allows(self, kind: ResourceKind, name: str, info: RunInfo) -> bool:
        """Whether ``info``'s caller may run this resource (for listings such as /v1/models)."""
        return self.guard is None or self.guard.allows(kind, name, info.permissions)

    async def run_flow(self, name: str, text: str, info: RunInfo) -> tuple[str, FlowContext]:
        flow = self.app.get_flow(name)
        if flow is None:
            raise NotFoundError(f"no flow named {name!r}")
        with run_vars(info):
            engine = self._engine()
            engine.authorize("flow", name)
            # Agent steps are checked up front, so a refused step 3 does not leave steps 1-2 run;
            # every agent (patterns' too) is checked again as it runs.
            for step in flow.steps:
                if isinstance(step, str):
                    try:
                        engine.authorize("agent", step)
                    except AuthorizationError as exc:
                        raise AuthorizationError(f"flow {name!r} cannot run step {step!r}: {exc.message}") from None
            return await run_flow(flow, text, engine, events=self.events, clock=self.clock)

    async def call_tool(self, name: str, arguments: dict[str, Any], info: RunInfo) -> Any:
        native = self.app.get_tool(name)
        if native is None and not (self.mcp is not None and self.mcp.knows(name)):
            raise NotFoundError(f"no tool named {name!r}")
        if not isinstance(arguments, dict):
            raise ValidationError("'arguments' must be a JSON object")
        token = current_run.set(info)
        try:
            engine = self._engine()
            engine.authorize("tool", name)  # a 403 here; inside a run the LLM gets the refusal
            if native is not None:  # an MCP tool's server checks its own arguments
                check_arguments(name, native.parameters.model_dump(exclude_none=True), arguments)
            result = await engine.execute_tool_by_llm_definition(name, json.dumps(arguments))
        finally:
            current_run.reset(token)
        if isinstance(result, Unavailable):
            raise ServiceUnavailableError(str(result["error"]), code=result.code)
        if isinstance(result, dict) and "error" in result:
            raise ToolFailed(str(result["error"]))
        return result

    def agents(self) -> list[dict[str, Any]]:
        out = []
        for name, reg in self.app._agents.items():
            cfg = reg["config"]
            out.append(
                {
                    "name": name,
                    "description": cfg.get("description"),
                    "tools": list(cfg.get("native_tool_names") or [])
                    + (self.mcp.tool_names_for(cfg.get("mcp_tools_from_servers_config")) if self.mcp else []),
                    "callable_agents": list(cfg.get("callable_agent_names") or []),
                }
            )
        return out

    def tools(self) -> list[dict[str, Any]]:
        native = [
            {"name": t.name, "description": t.description, "parameters": t.parameters.model_dump(exclude_none=True)}
            for t in self.app._tools.values()
        ]
        return native + (self.mcp.tools() if self.mcp is not None else [])

    def flows(self) -> list[dict[str, Any]]:
        return [
            {
                "name": f.flow_name,
                "description": f.description,
                "steps": [s if isinstance(s, str) else str(s) for s in f.steps],
            }
            for f in self.app._flows.values()
        ]


def _message(text: str | Message) -> Message:
    return text if isinstance(text, Message) else Message(role="user", content=text)


class ToolFailed(RuntimeError):
    pass
