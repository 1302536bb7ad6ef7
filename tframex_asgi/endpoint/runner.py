"""Runs agents, tools and flows of a ``TFrameXApp`` for one request each, without cross-talk.

Every request gets its own runtime context and engine (so its own agent instances and memory).
The context is never entered or exited: tframex's ``__aexit__`` closes the LLM client that all
concurrent requests share.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from tframex import FlowContext, Message, MessageChunk, TFrameXApp, TFrameXRuntimeContext

from tframex_asgi.clock import Clock, SystemClock
from tframex_asgi.endpoint.engine import InstrumentedEngine
from tframex_asgi.endpoint.flows import run_flow
from tframex_asgi.endpoint.runctx import current_run
from tframex_asgi.errors import NotFoundError, ServiceUnavailableError, ValidationError
from tframex_asgi.events import EventBus, RunInfo
from tframex_asgi.llm.usage import current_usage
from tframex_asgi.mcp.hub import MCPHub, Unavailable

__all__ = ["AgentRunner"]


class AgentRunner:
    def __init__(
        self,
        app: TFrameXApp,
        *,
        events: EventBus | None = None,
        clock: Clock | None = None,
        history_limit: int = 20,
        mcp: MCPHub | None = None,
    ) -> None:
        self.app = app
        self.events = events or EventBus()
        self.clock = clock or SystemClock()
        self.history_limit = history_limit
        self.mcp = mcp

    def _engine(self, history: dict[str, list[Message]] | None = None) -> InstrumentedEngine:
        # The hub stands in for tframex's MCPManager, which is never started here (see tframex_asgi.mcp).
        ctx = TFrameXRuntimeContext(self.app, llm=self.app.default_llm, mcp_manager=self.mcp)
        engine = InstrumentedEngine(
            self.app, ctx, events=self.events, clock=self.clock, history=history, history_limit=self.history_limit
        )
        ctx.engine = engine
        return engine

    def _agent(self, name: str) -> None:
        if name not in self.app._agents:
            raise NotFoundError(f"no agent named {name!r}")

    async def run_agent(self, name: str, text: str, info: RunInfo, history: Sequence[Message] = ()) -> Message:
        self._agent(name)
        engine = self._engine({name: list(history)})
        run_token, usage_token = current_run.set(info), current_usage.set(info.usage)
        try:
            result: Message = await engine.call_agent(name, Message(role="user", content=text))
            return result
        finally:
            current_run.reset(run_token)
            current_usage.reset(usage_token)

    async def stream_agent(
        self, name: str, text: str, info: RunInfo, history: Sequence[Message] = ()
    ) -> AsyncGenerator[MessageChunk, None]:
        """Chunks of the agent's answer as they arrive (call after checking the agent exists)."""
        self._agent(name)
        stream = self._engine({name: list(history)}).call_agent_stream(name, Message(role="user", content=text))
        try:
            while True:
                # Set per step: the consumer may drive the generator from another task.
                run_token, usage_token = current_run.set(info), current_usage.set(info.usage)
                try:
                    chunk = await stream.__anext__()
                except StopAsyncIteration:
                    return
                finally:
                    current_run.reset(run_token)
                    current_usage.reset(usage_token)
                yield chunk
        finally:
            await stream.aclose()

    def check_agent(self, name: str) -> None:
        self._agent(name)

    async def run_flow(self, name: str, text: str, info: RunInfo) -> tuple[str, FlowContext]:
        flow = self.app.get_flow(name)
        if flow is None:
            raise NotFoundError(f"no flow named {name!r}")
        run_token, usage_token = current_run.set(info), current_usage.set(info.usage)
        try:
            return await run_flow(flow, text, self._engine(), events=self.events, clock=self.clock)
        finally:
            current_run.reset(run_token)
            current_usage.reset(usage_token)

    async def call_tool(self, name: str, arguments: dict[str, Any], info: RunInfo) -> Any:
        if self.app.get_tool(name) is None and not (self.mcp is not None and self.mcp.knows(name)):
            raise NotFoundError(f"no tool named {name!r}")
        if not isinstance(arguments, dict):
            raise ValidationError("'arguments' must be a JSON object")
        token = current_run.set(info)
        try:
            result = await self._engine().execute_tool_by_llm_definition(name, json.dumps(arguments))
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


class ToolFailed(RuntimeError):
    pass
