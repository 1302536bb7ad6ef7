"""TracingSystem: OpenTelemetry traces (optional extra ``tframex-asgi[otel]``).

Imported only when ``metrics.backends.opentelemetry`` is enabled: the ASGI instrumentation
has a cost per request even with no-op providers (``python -m benchmarks.bench_metrics_layer``
measures it). HTTP server spans come from
opentelemetry-instrumentation-asgi (named after the route template, not the raw path); agent
runs, tool calls, flows and flow steps become child spans built from the event bus:
server > agent run > tool call, and server > flow > step > agent run.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from tframex_asgi.config.metrics import OpenTelemetryConfig
from tframex_asgi.errors import ConfigError
from tframex_asgi.events import (
    AgentFinished,
    AgentStarted,
    Event,
    FlowFinished,
    FlowStarted,
    FlowStepFinished,
    FlowStepStarted,
    ToolCalled,
)
from tframex_asgi.metrics.backend import Exemplar
from tframex_asgi.types import ASGIApp

try:
    from opentelemetry import trace
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ConfigError(
        "enterprise.metrics.backends.opentelemetry",
        f"OpenTelemetry is not installed ({exc.name}): pip install 'tframex-asgi[otel]'",
    ) from exc

__all__ = ["TracingSystem"]

logger = logging.getLogger("tframex_asgi.metrics")
# Open spans kept at most (runs whose finish event never came are ended and dropped).
_MAX_OPEN = 10_000


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _traces_url(endpoint: str) -> str:
    """OTLP/HTTP wants the signal's URL; a bare collector address gets ``/v1/traces``."""
    return endpoint.rstrip("/") + "/v1/traces" if urlsplit(endpoint).path in ("", "/") else endpoint


def _span_details(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # The raw path would make one span name per URL; the route template is set at the end.
    return str(scope.get("method") or scope.get("type", "HTTP")), {}


class TracingSystem:
    def __init__(self, config: OpenTelemetryConfig, provider: Any = None) -> None:
        self.config = config
        self._owned = provider is None
        if provider is None:
            provider = TracerProvider(
                resource=Resource.create({"service.name": config.service_name}),
                sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # No endpoint: the exporter's own default (OTEL_EXPORTER_OTLP_* or localhost:4318).
            endpoint = _traces_url(config.endpoint) if config.endpoint else None
            exporter = OTLPSpanExporter(endpoint=endpoint, headers=dict(config.headers) or None)
            provider.add_span_processor(BatchSpanProcessor(exporter))
        self.provider = provider
        self.tracer = provider.get_tracer("tframex_asgi")
        # Open spans by run id / flow execution id, and the open step of each flow execution.
        self._open: OrderedDict[str, Span] = OrderedDict()
        self._steps: dict[str, Span] = {}

    def wrap(self, app: ASGIApp) -> ASGIApp:
        middleware: ASGIApp = OpenTelemetryMiddleware(
            app,
            tracer_provider=self.provider,
            default_span_details=_span_details,
            # A span per send/receive message would cost more than the request on SSE streams.
            exclude_spans=["receive", "send"],
        )
        return middleware

    def name_span(self, method: str, route: str) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)

    def exemplar(self) -> Exemplar | None:
        # The server span has ended by now but is still the current one: its ids stay valid.
        ctx = trace.get_current_span().get_span_context()
        return {"trace_id": format(ctx.trace_id, "032x")} if ctx.is_valid and ctx.trace_flags.sampled else None

    # -- spans from events -----------------------------------------------------------------

    def _start(self, key: str, name: str, parent: Span | None, started: float, attrs: dict[str, Any]) -> None:
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(
            name, context=context, kind=SpanKind.INTERNAL, start_time=_ns(started), attributes=attrs
        )
        self._open[key] = span
        if len(self._open) > _MAX_OPEN:
            _, stale = self._open.popitem(last=False)
            stale.end()

    @staticmethod
    def _end(span: Span | None, status: str, error: str | None, ended: float) -> None:
        if span is None:
            return
        if status == "error":
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=_ns(ended))

    def _parent_of_agent(self, e: AgentStarted) -> Span | None:
        if e.parent_run_id is not None and e.parent_run_id in self._open:
            return self._open[e.parent_run_id]
        flow_id = e.info.flow_execution_id
        if flow_id is not None:
            return self._steps.get(flow_id) or self._open.get(flow_id)
        return None  # the current context: the HTTP server span

    def on_event(self, event: Event) -> None:
        if isinstance(event, AgentStarted):
            attrs = {"tframex.agent": event.agent_name, "tframex.run_id": event.run_id, "tframex.stream": event.stream}
            self._start(
                event.run_id, f"agent {event.agent_name}", self._parent_of_agent(event), event.started_at, attrs
            )
        elif isinstance(event, AgentFinished):
            span = self._open.pop(event.run_id, None)
            if span is not None:
                span.set_attribute("tframex.tool_calls", event.tool_calls_count)
            self._end(span, event.status, event.error, event.completed_at)
        elif isinstance(event, ToolCalled):
            parent = self._open.get(event.agent_run_id) if event.agent_run_id else None
            context = trace.set_span_in_context(parent) if parent is not None else None
            span = self.tracer.start_span(
                f"tool {event.tool_name}",
                context=context,
                kind=SpanKind.INTERNAL,
                start_time=_ns(event.started_at),
                attributes={"tframex.tool": event.tool_name, "tframex.tool_type": event.tool_type},
            )
            self._end(span, event.status, event.error, event.completed_at)
        elif isinstance(event, FlowStarted):
            attrs = {"tframex.flow": event.flow_name, "tframex.execution_id": event.execution_id}
            self._start(event.execution_id, f"flow {event.flow_name}", None, event.started_at, attrs)
        elif isinstance(event, FlowStepStarted):
            parent = self._open.get(event.execution_id)
            context = trace.set_span_in_context(parent) if parent is not None else None
            self._steps[event.execution_id] = self.tracer.start_span(
                f"step {event.step_name}",
                context=context,
                kind=SpanKind.INTERNAL,
                start_time=_ns(event.started_at),
                attributes={"tframex.step": event.step_name, "tframex.step_order": event.step_order},
            )
        elif isinstance(event, FlowStepFinished):
            self._end(self._steps.pop(event.execution_id, None), event.status, event.error, event.completed_at)
        elif isinstance(event, FlowFinished):
            self._end(self._open.pop(event.execution_id, None), event.status, event.error, event.completed_at)

    async def shutdown(self) -> None:
        for span in list(self._steps.values()) + list(self._open.values()):
            span.end()
        self._steps.clear()
        self._open.clear()
        if self._owned:
            self.provider.shutdown()
