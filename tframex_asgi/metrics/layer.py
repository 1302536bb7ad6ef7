"""Stack builder of the metrics layer: backends from config, the HTTP middleware, observed
metrics, event subscriptions, ``GET /metrics`` and (when configured) OpenTelemetry tracing.

The layer is ``OpenTelemetry(PerformanceMonitor(app))``: the metrics middleware runs inside the
server span, so it can name the span after the route and attach the trace id as an exemplar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tframex_asgi.mcp.metrics import mcp_callbacks
from tframex_asgi.metrics.backend import MetricsBackend, load_custom_backend
from tframex_asgi.metrics.collector import MetricsCollector
from tframex_asgi.metrics.middleware import PerformanceMonitor, TraceHook
from tframex_asgi.metrics.process import PROCESS_CALLBACKS, writer_callbacks
from tframex_asgi.services import Services
from tframex_asgi.types import ASGIApp

if TYPE_CHECKING:
    from tframex_asgi.metrics.prometheus import PrometheusBackend

__all__ = ["build_collector", "build_layer"]

_PATH = "enterprise.metrics.backends"


def _backends(services: Services) -> tuple[list[tuple[str, MetricsBackend]], list[str], PrometheusBackend | None]:
    cfg = services.config.metrics.backends
    backends: list[tuple[str, MetricsBackend]] = []
    guarded: list[str] = []
    prometheus: PrometheusBackend | None = None
    # Metrics switched on with no backend named at all: Prometheus in-app. Naming any backend
    # (opentelemetry alone included) means exactly those.
    if cfg.prometheus.enabled or not cfg.any_enabled:
        from tframex_asgi.metrics.prometheus import prometheus_backend

        prometheus = prometheus_backend(cfg.prometheus, f"{_PATH}.prometheus")
        backends.append(("prometheus", prometheus))
    if cfg.statsd.enabled:
        from tframex_asgi.metrics.statsd import StatsDBackend

        backends.append(("statsd", StatsDBackend(cfg.statsd)))
    if cfg.storage.enabled:
        from tframex_asgi.metrics.storage_backend import storage_backend

        backends.append(("storage", storage_backend(services, f"{_PATH}.storage")))
    if cfg.opentelemetry.enabled:
        cfg.opentelemetry.check_endpoint(f"{_PATH}.opentelemetry")
        if cfg.opentelemetry.metrics:
            from tframex_asgi.metrics.otel_metrics import OpenTelemetryMetricsBackend

            otel = OpenTelemetryMetricsBackend(
                cfg.opentelemetry,
                export_interval=services.config.metrics.export_interval,
                provider=services.extras.get("meter_provider"),
            )
            backends.append(("opentelemetry", otel))
    for i, custom in enumerate(cfg.custom):
        name = f"custom[{i}]"
        backends.append((name, load_custom_backend(custom, f"{_PATH}.{name}")))
        guarded.append(name)
    return backends, guarded, prometheus


def build_collector(services: Services) -> MetricsCollector:
    """The stack's collector (cached in ``services.extras["metrics"]``), started with lifespan."""
    existing = services.extras.get("metrics")
    if isinstance(existing, MetricsCollector):
        return existing
    cfg = services.config.metrics
    backends, guarded, prometheus = _backends(services)
    collector = MetricsCollector(
        backends, max_series=cfg.max_series, export_interval=cfg.export_interval, guarded=guarded
    )
    callbacks = {**PROCESS_CALLBACKS, **writer_callbacks(services.extras), **mcp_callbacks(services.extras)}
    for name, callback in callbacks.items():
        collector.observe_with(name, callback)
    services.events.subscribe(collector.on_event)
    services.on_startup(collector.start)
    services.on_shutdown(collector.stop)
    services.extras["metrics"] = collector
    if prometheus is not None and prometheus.config.port is None:
        from tframex_asgi.metrics.routes import metrics_route

        services.extras.setdefault("routes", []).append(metrics_route(prometheus, collector))
    return collector


def build_layer(app: ASGIApp, services: Services) -> ASGIApp | None:
    collector = build_collector(services)
    otel = services.config.metrics.backends.opentelemetry
    hook: TraceHook | None = None
    tracing = None
    if otel.enabled and otel.traces:
        from tframex_asgi.metrics.otel import TracingSystem

        # A provider already in extras (tests, or an app that configures OTel itself) is used as is.
        tracing = TracingSystem(otel, provider=services.extras.get("tracer_provider"))
        services.extras["tracing"] = tracing
        services.events.subscribe(tracing.on_event)
        services.on_shutdown(tracing.shutdown)
        hook = tracing
    wrapped: ASGIApp = PerformanceMonitor(app, collector, trace_hook=hook)
    return tracing.wrap(wrapped) if tracing is not None else wrapped
