"""Per-run metadata in contextvars: tframex forwards call kwargs to the LLM payload, so request
metadata (request id, user, conversation) must never travel as kwargs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from tframex_asgi.events import RunInfo
from tframex_asgi.llm.usage import current_usage

__all__ = ["current_agent_run", "current_run", "current_tool_count", "run_vars"]

current_run: ContextVar[RunInfo | None] = ContextVar("tframex_asgi_run", default=None)
# Id of the agent run in progress: the parent of nested agent runs and tool calls.
current_agent_run: ContextVar[str | None] = ContextVar("tframex_asgi_agent_run", default=None)
# Tool calls made by the agent run in progress (a one-item list so nested code can count).
current_tool_count: ContextVar[list[int] | None] = ContextVar("tframex_asgi_tool_count", default=None)


@contextmanager
def run_vars(info: RunInfo) -> Iterator[None]:
    """``info`` as the current run and its usage as the usage being counted, for the block.

    Streams enter it around each step: their consumer may drive them from another task, whose
    context does not hold the run.
    """
    run_token, usage_token = current_run.set(info), current_usage.set(info.usage)
    try:
        yield
    finally:
        current_run.reset(run_token)
        current_usage.reset(usage_token)
