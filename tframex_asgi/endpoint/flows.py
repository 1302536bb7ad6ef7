"""Run a registered flow with per-step events.

tframex 1.1.0's ``Flow.execute`` swallows a failing step's exception into an assistant message;
we wrap each of the flow's steps in a pattern that emits step events and records the failure,
run a per-request copy of the flow (the registered one is never mutated), and raise.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from tframex import BasePattern, Flow, FlowContext, Message

from tframex_asgi.clock import Clock
from tframex_asgi.endpoint.runctx import current_run
from tframex_asgi.events import EventBus, FlowFinished, FlowStarted, FlowStepFinished, FlowStepStarted, RunInfo

__all__ = ["FlowError", "run_flow"]


class FlowError(RuntimeError):
    def __init__(self, flow_name: str, step_name: str, cause: BaseException) -> None:
        super().__init__(f"flow {flow_name!r} failed at step {step_name!r}: {type(cause).__name__}: {cause}")
        self.flow_name = flow_name
        self.step_name = step_name
        self.cause = cause


class _Step(BasePattern):  # type: ignore[misc]
    def __init__(
        self,
        step: Any,
        order: int,
        flow_name: str,
        execution_id: str,
        events: EventBus,
        clock: Clock,
        failures: list[FlowError],
    ) -> None:
        self.step = step
        self.step_name = step if isinstance(step, str) else str(step)
        super().__init__(self.step_name)
        self.step_type = "agent" if isinstance(step, str) else type(step).__name__
        self.order = order
        self.flow_name = flow_name
        self.execution_id = execution_id
        self.events = events
        self.clock = clock
        self.failures = failures

    async def execute(
        self, flow_ctx: FlowContext, engine: Any, agent_call_kwargs: dict[str, Any] | None = None
    ) -> FlowContext:
        info = current_run.get() or RunInfo()
        step_input = flow_ctx.current_message.content
        started = self.clock.time()
        self.events.emit(
            FlowStepStarted(
                self.execution_id, self.flow_name, self.step_name, self.step_type, self.order, step_input, started, info
            )
        )
        error: BaseException | None = None
        try:
            if isinstance(self.step, str):
                output = await engine.call_agent(self.step, flow_ctx.current_message, **(agent_call_kwargs or {}))
                flow_ctx.update_current_message(output)
            else:
                flow_ctx = await self.step.execute(flow_ctx, engine, agent_call_kwargs=agent_call_kwargs)
        except Exception as exc:
            error = exc
            self.failures.append(FlowError(self.flow_name, self.step_name, exc))
            raise
        finally:
            done = self.clock.time()
            self.events.emit(
                FlowStepFinished(
                    self.execution_id,
                    self.flow_name,
                    self.step_name,
                    self.step_type,
                    self.order,
                    step_input,
                    None if error else flow_ctx.current_message.content,
                    "error" if error else "success",
                    f"{type(error).__name__}: {error}" if error else None,
                    started,
                    done,
                    (done - started) * 1000.0,
                    info,
                )
            )
        return flow_ctx


async def run_flow(
    flow: Flow,
    text: str,
    engine: Any,
    *,
    events: EventBus,
    clock: Clock,
    shared_data: dict[str, Any] | None = None,
    template_vars: dict[str, Any] | None = None,
) -> tuple[str, FlowContext]:
    """Run ``flow`` on ``text``; returns (execution id, final context). Raises FlowError.

    ``shared_data`` and ``template_vars`` are tframex's ``initial_shared_data`` and
    ``flow_template_vars`` (in-process runs pass them through)."""
    execution_id = str(uuid.uuid4())
    info = replace(current_run.get() or RunInfo(), flow_execution_id=execution_id)
    token = current_run.set(info)
    failures: list[FlowError] = []
    started = clock.time()
    events.emit(FlowStarted(execution_id, flow.flow_name, info, text, started))
    copy = Flow(flow.flow_name, flow.description)
    copy.steps = [_Step(s, i, flow.flow_name, execution_id, events, clock, failures) for i, s in enumerate(flow.steps)]
    ctx: FlowContext | None = None
    try:
        ctx = await copy.execute(
            Message(role="user", content=text),
            engine,
            initial_shared_data=shared_data,
            flow_template_vars=template_vars,
        )
    finally:
        done = clock.time()
        error = failures[0] if failures else None
        events.emit(
            FlowFinished(
                execution_id,
                flow.flow_name,
                info,
                text,
                None if error or ctx is None else ctx.current_message.content,
                "error" if error or ctx is None else "success",
                str(error) if error else None,
                started,
                done,
                (done - started) * 1000.0,
                len(flow.steps),
            )
        )
        current_run.reset(token)
    if failures:
        raise failures[0]
    return execution_id, ctx
