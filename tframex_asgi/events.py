"""Typed events emitted by the TFrameX endpoint's instrumentation hooks.

Metrics, persistence and audit subscribe to an :class:`EventBus`. Subscribers are called
synchronously and must be quick (record a number, put on a queue); one that raises is logged
and never breaks the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "AgentFinished",
    "AgentStarted",
    "Event",
    "EventBus",
    "FlowFinished",
    "FlowStarted",
    "FlowStepFinished",
    "FlowStepStarted",
    "RunInfo",
    "ToolCalled",
    "Usage",
]

logger = logging.getLogger("tframex_asgi.events")


@dataclass
class Usage:
    """Token usage reported by the LLM wrappers for one top-level run (mutable accumulator)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, prompt: int, completion: int) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion


@dataclass(frozen=True)
class RunInfo:
    """Who asked for a run: carried in a contextvar, never passed to tframex as kwargs."""

    request_id: str | None = None
    user_id: str | None = None
    conversation_id: str | None = None
    flow_execution_id: str | None = None
    usage: Usage = field(default_factory=Usage, compare=False)
    # The caller's granted permissions, for the resource guard (rbac.resources) in the engine.
    # None: nobody asked (a run outside the HTTP endpoint); the guard then grants nothing.
    permissions: frozenset[str] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class AgentStarted:
    run_id: str
    agent_name: str
    parent_run_id: str | None
    info: RunInfo
    input: str | None
    stream: bool
    started_at: float


@dataclass(frozen=True)
class AgentFinished:
    run_id: str
    agent_name: str
    parent_run_id: str | None
    info: RunInfo
    input: str | None
    output: str | None
    status: Literal["success", "error", "cancelled"]  # cancelled: the client left mid-stream
    error: str | None
    started_at: float
    completed_at: float
    duration_ms: float
    tool_calls_count: int
    stream: bool


@dataclass(frozen=True)
class ToolCalled:
    call_id: str
    agent_run_id: str | None
    tool_name: str
    tool_type: Literal["native", "mcp", "agent"]
    arguments: Any
    result: str | None
    status: Literal["success", "error"]
    error: str | None
    started_at: float
    completed_at: float
    duration_ms: float
    info: RunInfo


@dataclass(frozen=True)
class FlowStarted:
    execution_id: str
    flow_name: str
    info: RunInfo
    input: str | None
    started_at: float


@dataclass(frozen=True)
class FlowStepStarted:
    execution_id: str
    flow_name: str
    step_name: str
    step_type: str
    step_order: int
    input: str | None
    started_at: float
    info: RunInfo


@dataclass(frozen=True)
class FlowStepFinished:
    execution_id: str
    flow_name: str
    step_name: str
    step_type: str
    step_order: int
    input: str | None
    output: str | None
    status: Literal["success", "error"]
    error: str | None
    started_at: float
    completed_at: float
    duration_ms: float
    info: RunInfo


@dataclass(frozen=True)
class FlowFinished:
    execution_id: str
    flow_name: str
    info: RunInfo
    input: str | None
    output: str | None
    status: Literal["success", "error"]
    error: str | None
    started_at: float
    completed_at: float
    duration_ms: float
    steps: int


Event = AgentStarted | AgentFinished | ToolCalled | FlowStarted | FlowStepStarted | FlowStepFinished | FlowFinished
Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

        return unsubscribe

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    def emit(self, event: Event) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                logger.exception("event subscriber %r failed on %s", subscriber, type(event).__name__)
