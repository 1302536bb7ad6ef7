"""Persist the endpoint's execution events: agent_executions, tool_calls, flow_executions, flow_steps.

Subscribers run inside the request, so the recorder only builds rows and hands them to the write
queue. A child row must reach the database after its parent (foreign keys), yet tool calls end
before their agent run and steps before their flow: children are held per open run and submitted
right after the parent row, when the run finishes with its final status and duration.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tframex_asgi.events import (
    AgentFinished,
    AgentStarted,
    Event,
    FlowFinished,
    FlowStarted,
    FlowStepFinished,
    RunInfo,
    ToolCalled,
)
from tframex_asgi.storable import storable_json, storable_text
from tframex_asgi.storage.queue import WriteQueue
from tframex_asgi.storage.validate import MAX_VALUE_CHARS
from tframex_asgi.util import naive_utc

if TYPE_CHECKING:
    from tframex_asgi.services import Services

__all__ = ["Recorder", "enable_recording"]

logger = logging.getLogger("tframex_asgi.endpoint.recorder")
Item = tuple[str, dict[str, Any]]
MAX_OPEN_RUNS = 10_000  # runs whose end never came (a bug) must not grow memory without bound


def _ts(seconds: float) -> datetime:
    return naive_utc(seconds)


def _text(value: Any, limit: int = MAX_VALUE_CHARS) -> str | None:
    """Storable text, clipped to the column's size. Client input was refused at the door if it
    held NUL or a lone surrogate; what a run produced gets U+FFFD instead (see storable.py)."""
    if value is None:
        return None
    return storable_text(value if isinstance(value, str) else str(value))[:limit]


def _uuid(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(value)) if value else None
    except ValueError:
        return None  # a token subject, not a users row: kept in metadata instead


def _json(value: Any) -> Any:
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return {"repr": _text(repr(value), 10_000)}
    # Arguments a model chose may hold NUL or lone surrogates (decoded from its JSON): the writer
    # would refuse the row, so they are stored replaced instead (ensure_ascii escapes both).
    return storable_json(value) if "\\u0000" in text or "\\ud" in text else value


def _meta(info: RunInfo, **extra: Any) -> dict[str, Any]:
    meta = {"request_id": info.request_id, **extra}
    if info.user_id and _uuid(info.user_id) is None:
        meta["user"] = _text(info.user_id, 255)
    return {k: v for k, v in meta.items() if v is not None}


class Recorder:
    def __init__(self, writer: WriteQueue) -> None:
        self.writer = writer
        self._agents: dict[str, list[Item]] = {}  # open agent run -> its tool calls
        self._flows: dict[str, list[Item]] = {}  # open flow -> its steps, agent runs, tool calls

    def __call__(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(self, event)

    def _emit(self, items: list[Item], flow_id: str | None) -> None:
        pending = self._flows.get(flow_id) if flow_id else None
        if pending is not None:
            pending.extend(items)  # the flow's row is not written yet
            return
        for table, row in items:
            self.writer.submit(table, row, trusted=True)  # fresh dicts of schema columns, never changed after

    def _open(self, runs: dict[str, list[Item]], key: str) -> None:
        if len(runs) >= MAX_OPEN_RUNS:
            stale = next(iter(runs))
            logger.error("recorder: run %s never finished; its %d child rows are dropped", stale, len(runs[stale]))
            del runs[stale]
        runs[key] = []

    def _agent_started(self, e: AgentStarted) -> None:
        self._open(self._agents, e.run_id)

    def _tool_called(self, e: ToolCalled) -> None:
        parent = e.agent_run_id if e.agent_run_id in self._agents else None
        row = {
            "id": e.call_id,
            "agent_execution_id": parent,
            "tool_name": _text(e.tool_name, 255),
            "tool_type": e.tool_type,
            "arguments": _json(e.arguments),
            "result": _text(e.result),
            "execution_time_ms": round(e.duration_ms),
            "status": e.status,
            "error_message": _text(e.error),
            "called_at": _ts(e.started_at),
            "completed_at": _ts(e.completed_at),
        }
        if parent is not None:
            self._agents[parent].append(("tool_calls", row))
        else:
            self._emit([("tool_calls", row)], e.info.flow_execution_id)

    def _agent_finished(self, e: AgentFinished) -> None:
        info = e.info
        usage = None
        if e.parent_run_id is None:
            usage = {"prompt_tokens": info.usage.prompt_tokens, "completion_tokens": info.usage.completion_tokens}
        row = {
            "id": e.run_id,
            "user_id": _uuid(info.user_id),
            "conversation_id": _uuid(info.conversation_id),
            "flow_execution_id": _uuid(info.flow_execution_id),
            "agent_name": _text(e.agent_name, 255),
            "input_message": _text(e.input),
            "output_message": _text(e.output),
            "execution_time_ms": round(e.duration_ms),
            "tool_calls_count": e.tool_calls_count,
            "status": e.status,
            "error_message": _text(e.error),
            "started_at": _ts(e.started_at),
            "completed_at": _ts(e.completed_at),
            "metadata": _meta(info, stream=e.stream, parent_run_id=e.parent_run_id, usage=usage),
        }
        children = self._agents.pop(e.run_id, [])
        self._emit([("agent_executions", row), *children], info.flow_execution_id)

    def _flow_started(self, e: FlowStarted) -> None:
        self._open(self._flows, e.execution_id)

    def _step_finished(self, e: FlowStepFinished) -> None:
        row = {
            "id": str(uuid.uuid4()),
            "execution_id": e.execution_id,
            "step_name": _text(e.step_name, 255),
            "step_type": _text(e.step_type, 100),
            "input_data": _text(e.input),
            "output_data": _text(e.output),
            "status": e.status,
            "started_at": _ts(e.started_at),
            "completed_at": _ts(e.completed_at),
            "error_message": _text(e.error),
            "step_order": e.step_order,
        }
        pending = self._flows.get(e.execution_id)
        if pending is not None:
            pending.append(("flow_steps", row))

    def _flow_finished(self, e: FlowFinished) -> None:
        row = {
            "id": e.execution_id,
            "user_id": _uuid(e.info.user_id),
            "flow_name": _text(e.flow_name, 255),
            "status": e.status,
            "initial_input": _text(e.input),
            "final_output": _text(e.output),
            "started_at": _ts(e.started_at),
            "completed_at": _ts(e.completed_at),
            "error_message": _text(e.error),
            "metadata": _meta(e.info, steps=e.steps, duration_ms=round(e.duration_ms, 3)),
        }
        children = self._flows.pop(e.execution_id, [])
        for table, child in [("flow_executions", row), *children]:
            self.writer.submit(table, child, trusted=True)

    _handlers: dict[type, Callable[[Recorder, Any], None]] = {
        AgentStarted: _agent_started,
        ToolCalled: _tool_called,
        AgentFinished: _agent_finished,
        FlowStarted: _flow_started,
        FlowStepFinished: _step_finished,
        FlowFinished: _flow_finished,
    }


def enable_recording(services: Services) -> Recorder:
    """Subscribe a recorder to ``services.events`` (once per stack); rows go through ``services.writer``."""
    recorder = services.recorder
    if recorder is None:
        recorder = services.recorder = Recorder(services.writer)
        services.on_shutdown(_unsubscriber(services.events.subscribe(recorder)))
    return recorder


def _unsubscriber(unsubscribe: Callable[[], None]) -> Callable[[], Any]:
    async def hook() -> None:
        unsubscribe()

    return hook
