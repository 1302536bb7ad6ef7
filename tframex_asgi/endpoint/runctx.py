"""Per-run metadata in contextvars: tframex forwards call kwargs to the LLM payload, so request
metadata (request id, user, conversation) must never travel as kwargs."""

from __future__ import annotations

from contextvars import ContextVar

from tframex_asgi.events import RunInfo

__all__ = ["current_agent_run", "current_run", "current_tool_count"]

current_run: ContextVar[RunInfo | None] = ContextVar("tframex_asgi_run", default=None)
# Id of the agent run in progress: the parent of nested agent runs and tool calls.
current_agent_run: ContextVar[str | None] = ContextVar("tframex_asgi_agent_run", default=None)
# Tool calls made by the agent run in progress (a one-item list so nested code can count).
current_tool_count: ContextVar[list[int] | None] = ContextVar("tframex_asgi_tool_count", default=None)
