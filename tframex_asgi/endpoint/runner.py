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
from tframex_asgi.endpoint.runctx import current_run
from tframex_asgi.endpoint.sse import end_with
from tframex_asgi.errors import NotFoundError, ValidationError
from tframex_asgi.events import EventBus, RunInfo
from tframex_asgi.llm.usage import current_usage

__all__ = ["AgentRunner"]


class AgentRunner:
    def __init__(
        self, app: TFrameXApp, *, events: EventBus | None = None, clock: Clock | None = None, history_limit: int = 20
    ) -> None:
        self.app = app
        self.events = events or EventBus()
        self.clock = clock or SystemClock()
        self.history_limit = history_limit

    def _engine(self, history: dict[str, list[Message]] | None = None) -> InstrumentedEngine:
        ctx = TFrameXRuntimeContext(self.app, llm=self.app.default_llm, mcp_manager=self.app._mcp_manager)
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
                try:
                    yield chunk
                except asyncio.CancelledError as exc:
                    # Cancelled while waiting at the yield (the client left between two chunks):
                    # end the engine's stream with the same cause, so it records the same outcome.
                    run_token, usage_token = current_run.set(info), current_usage.set(info.usage)
                    try:
                        await end_with(stream, exc)
                    finally:
                        current_run.reset(run_token)
                        current_usage.reset(usage_token)
                    raise
        finally:
            # Closed early (the client left while we waited at the yield): the engine records
            # the run and the LLM its usage in this step, so they need the run's vars as well.
            run_token, usage_token = current_run.set(info), current_usage.set(info.usage)
            try:
                await stream.aclose()
            finally:
                current_run.reset(run_token)
                current_usage.reset(usage_token)

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
        if self.app.get_tool(name) is None:
            raise NotFoundError(f"no tool named {name!r}")
        if not isinstance(arguments, dict):
            raise ValidationError("'arguments' must be a JSON object")
        token = current_run.set(info)
        try:
            result = await self._engine().execute_tool_by_llm_definition(name, json.dumps(arguments))
        finally:
            current_run.reset(token)
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
                    "tools": list(cfg.get("native_tool_names") or []),
                    "callable_agents": list(cfg.get("callable_agent_names") or []),
                }
            )
        return out

    def tools(self) -> list[dict[str, Any]]:
        return [
            {"name": t.name, "description": t.description, "parameters": t.parameters.model_dump(exclude_none=True)}
            for t in self.app._tools.values()
        ]

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
