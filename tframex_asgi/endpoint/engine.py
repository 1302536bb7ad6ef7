"""The instrumentation hook: an :class:`Engine` subclass that emits typed events.

Installed per request as ``ctx.engine``. It also fixes tframex 1.1.0 behaviour that would be
wrong behind an HTTP endpoint: agents named in ``callable_agents`` are dispatched as tools
(upstream cannot resolve them), memory returns the newest messages, and LLM failures that
upstream returns as assistant text raise :class:`LLMError`.

It is also where the resource guard (``rbac.resources``) is enforced: every agent run (top
level, flow step, or called as a tool by another agent), every tool call and every flow asks
:meth:`InstrumentedEngine.authorize` first, with the permissions of the run's caller, so no
route or nesting can run what the caller may not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncGenerator
from typing import Any, Literal

from tframex import Engine, Message, MessageChunk, OpenAIChatLLM

from tframex_asgi.clock import Clock
from tframex_asgi.endpoint.memory import TailMemory
from tframex_asgi.endpoint.runctx import current_agent_run, current_run, current_tool_count
from tframex_asgi.endpoint.sse import is_disconnect
from tframex_asgi.errors import LLMError
from tframex_asgi.events import AgentFinished, AgentStarted, EventBus, RunInfo, ToolCalled
from tframex_asgi.llm.openai import TFRAMEX_ERROR_PREFIXES, StrictOpenAIChatLLM
from tframex_asgi.mcp.hub import MCPHub
from tframex_asgi.rbac.resources import ResourceGuard, ResourceKind

__all__ = ["InstrumentedEngine"]


def _text(message: str | Message) -> str | None:
    return message if isinstance(message, str) else message.content


def _cancelled(error: BaseException) -> bool:
    return isinstance(error, asyncio.CancelledError | GeneratorExit)


def _error_text(error: BaseException | None) -> str | None:
    """The run record's error text. A cancellation gets a plain sentence: its own text names
    anyio cancel scopes and tasks by memory address and source path."""
    if error is None:
        return None
    if _cancelled(error):
        if is_disconnect(error):
            return "cancelled: the client disconnected before the run finished"
        return "cancelled: the run was stopped before it finished"
    return f"{type(error).__name__}: {error}"


class InstrumentedEngine(Engine):  # type: ignore[misc]
    def __init__(
        self,
        app: Any,
        runtime_context: Any,
        *,
        events: EventBus,
        clock: Clock,
        history: dict[str, list[Message]] | None = None,
        history_limit: int = 20,
        guard: ResourceGuard | None = None,
    ) -> None:
        super().__init__(app, runtime_context)
        self._events = events
        self._clock = clock
        self._guard = guard
        self._history = dict(history or {})
        self._history_limit = history_limit

    def _get_agent_instance(self, agent_name: str) -> Any:
        created = agent_name not in self._agent_instances
        agent = super()._get_agent_instance(agent_name)
        if created:
            config = self._app._agents[agent_name]["config"]
            if config.get("memory_override") is None:
                agent.memory = TailMemory(self._history.pop(agent_name, ()))
            if hasattr(agent, "config") and "history_limit" not in agent.config:
                agent.config["history_limit"] = self._history_limit
        return agent

    def authorize(self, kind: ResourceKind, name: str) -> None:
        """AuthorizationError unless the run's caller may run this agent, tool or flow."""
        if self._guard is not None:
            self._guard.check(kind, name, self._info().permissions)

    # -- agents -------------------------------------------------------------------------

    def _start(self, agent_name: str, input_message: str | Message, stream: bool) -> tuple[str, str | None, float]:
        run_id = str(uuid.uuid4())
        parent = current_agent_run.get()
        started = self._clock.time()
        self._events.emit(AgentStarted(run_id, agent_name, parent, self._info(), _text(input_message), stream, started))
        return run_id, parent, started

    def _info(self) -> RunInfo:
        return current_run.get() or RunInfo()

    def _finish(
        self,
        run_id: str,
        agent_name: str,
        parent: str | None,
        input_message: str | Message,
        started: float,
        output: str | None,
        error: BaseException | None,
        tools: int,
        stream: bool,
    ) -> None:
        done = self._clock.time()
        self._events.emit(
            AgentFinished(
                run_id=run_id,
                agent_name=agent_name,
                parent_run_id=parent,
                info=self._info(),
                input=_text(input_message),
                output=output,
                status="success" if error is None else "cancelled" if _cancelled(error) else "error",
                error=_error_text(error),
                started_at=started,
                completed_at=done,
                duration_ms=(done - started) * 1000.0,
                tool_calls_count=tools,
                stream=stream,
            )
        )

    def _check_output(self, agent_name: str, text: str | None) -> None:
        llm = getattr(self._agent_instances.get(agent_name), "llm", None)
        if (
            isinstance(llm, OpenAIChatLLM)
            and not isinstance(llm, StrictOpenAIChatLLM)
            and text
            and text.startswith(TFRAMEX_ERROR_PREFIXES)
        ):
            raise LLMError(f"LLM of agent {agent_name!r} failed")

    async def call_agent(self, agent_name: str, input_message: str | Message, **kwargs: Any) -> Message:
        self.authorize("agent", agent_name)
        run_id, parent, started = self._start(agent_name, input_message, False)
        run_token = current_agent_run.set(run_id)
        counter = [0]
        count_token = current_tool_count.set(counter)
        try:
            result: Message = await super().call_agent(agent_name, input_message, **kwargs)
            self._check_output(agent_name, result.content)
        except BaseException as exc:
            self._finish(run_id, agent_name, parent, input_message, started, None, exc, counter[0], False)
            raise
        finally:
            current_agent_run.reset(run_token)
            current_tool_count.reset(count_token)
        self._finish(run_id, agent_name, parent, input_message, started, result.content, None, counter[0], False)
        return result

    def call_agent_stream(
        self, agent_name: str, input_message: str | Message, **kwargs: Any
    ) -> AsyncGenerator[MessageChunk, None]:
        return self._instrumented_stream(agent_name, input_message, **kwargs)

    async def _instrumented_stream(
        self, agent_name: str, input_message: str | Message, **kwargs: Any
    ) -> AsyncGenerator[MessageChunk, None]:
        self.authorize("agent", agent_name)
        run_id, parent, started = self._start(agent_name, input_message, True)
        counter = [0]
        parts: list[str] = []
        error: BaseException | None = None
        # The generator's steps run in the consumer's context, so the vars are set per step.
        stream: AsyncGenerator[MessageChunk, None] | None = None
        try:
            stream = super()._call_agent_stream_impl(agent_name, input_message, **kwargs)
            while True:
                run_token = current_agent_run.set(run_id)
                count_token = current_tool_count.set(counter)
                try:
                    chunk = await stream.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    current_agent_run.reset(run_token)
                    current_tool_count.reset(count_token)
                if chunk.content:
                    parts.append(chunk.content)
                yield chunk
            self._check_output(agent_name, "".join(parts))
        except BaseException as exc:
            error = exc
            raise
        finally:
            # A cancelled stream keeps what it produced (what the client received).
            output = None if error is not None and not _cancelled(error) else "".join(parts)
            self._finish(run_id, agent_name, parent, input_message, started, output, error, counter[0], True)
            if stream is not None:
                # Now, in this context (the LLM reports its usage on close); a failing close
                # must not replace the run's own outcome.
                with contextlib.suppress(Exception):
                    await stream.aclose()

    # -- tools --------------------------------------------------------------------------

    def _tool_type(self, name: str) -> Literal["native", "mcp", "agent"]:
        if name in self._app._agents and self._app.get_tool(name) is None:
            return "agent"
        if "__" in name and self._runtime_context.mcp_manager is not None:
            return "mcp"
        return "native"

    async def execute_tool_by_llm_definition(self, tool_definition_name: str, arguments_json_str: str) -> Any:
        kind = self._tool_type(tool_definition_name)
        started = self._clock.time()
        counter = current_tool_count.get()
        if counter is not None:
            counter[0] += 1
        try:
            arguments: Any = json.loads(arguments_json_str) if arguments_json_str else {}
        except ValueError:
            arguments = arguments_json_str
        error: str | None = None
        result: Any
        try:
            if kind == "agent":
                message = arguments.get("input_message", "") if isinstance(arguments, dict) else str(arguments)
                reply = await self.call_agent(tool_definition_name, Message(role="user", content=str(message)))
                result = reply.content or ""
            elif kind == "mcp" and isinstance(self._runtime_context.mcp_manager, MCPHub):
                # Not tframex's MCP path: it turns "server down" into text, and it has no timeout.
                self.authorize("tool", tool_definition_name)
                result = await self._runtime_context.mcp_manager.call_tool(tool_definition_name, arguments)
            else:
                # A refusal becomes the tool's error result: the calling LLM sees it, nothing runs.
                self.authorize("tool", tool_definition_name)
                result = await super().execute_tool_by_llm_definition(tool_definition_name, arguments_json_str)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            result = {"error": error}
        if isinstance(result, dict) and "error" in result:
            error = str(result["error"])
        done = self._clock.time()
        self._events.emit(
            ToolCalled(
                call_id=str(uuid.uuid4()),
                agent_run_id=current_agent_run.get(),
                tool_name=tool_definition_name,
                tool_type=kind,
                arguments=arguments,
                result=None if error else (result if isinstance(result, str) else json.dumps(result, default=str)),
                status="error" if error else "success",
                error=error,
                started_at=started,
                completed_at=done,
                duration_ms=(done - started) * 1000.0,
                info=self._info(),
            )
        )
        return result
