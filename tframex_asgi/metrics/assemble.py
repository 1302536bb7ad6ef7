"""The metrics collector of one stack: backends from config, observed metrics (process, write
queue, MCP servers) and the ``GET /metrics`` route when Prometheus is served in-app.

The composition root (:mod:`tframex_asgi.services`) calls :func:`build_collector` with getters for
the parts the observed metrics read at collection time (the write queue and the MCP hub may be
created after the collector); the layer is built in :mod:`tframex_asgi.layers`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tframex_asgi.clock import Clock
from tframex_asgi.config.metrics import MetricsConfig
from tframex_asgi.events import EventBus
from tframex_asgi.metrics.backend import Callback, MetricsBackend, load_custom_backend
from tframex_asgi.metrics.collector import MetricsCollector
from tframex_asgi.metrics.process import PROCESS_CALLBACKS, writer_callbacks
from tframex_asgi.metrics.prometheus import prometheus_backend
from tframex_asgi.metrics.routes import metrics_route
from tframex_asgi.metrics.statsd import StatsDBackend
from tframex_asgi.metrics.storage_backend import storage_backend

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from tframex_asgi.metrics.prometheus import PrometheusBackend

__all__ = ["BuiltMetrics", "build_collector"]

_PATH = "enterprise.metrics.backends"


@dataclass(frozen=True)
class BuiltMetrics:
    collector: MetricsCollector
    routes: tuple[BaseRoute, ...]


def _backends(
    cfg: MetricsConfig, clock: Clock, storage: Callable[[], Any], meter_provider: Any
) -> tuple[list[tuple[str, MetricsBackend]], list[str], PrometheusBackend | None]:
    backends_cfg = cfg.backends
    backends: list[tuple[str, MetricsBackend]] = []
    guarded: list[str] = []
    prometheus: PrometheusBackend | None = None
    # Metrics switched on with no backend named at all: Prometheus in-app. Naming any backend
    # (opentelemetry alone included) means exactly those.
    if backends_cfg.prometheus.enabled or not backends_cfg.any_enabled:
        prometheus = prometheus_backend(backends_cfg.prometheus, f"{_PATH}.prometheus")
        backends.append(("prometheus", prometheus))
    if backends_cfg.statsd.enabled:
        backends.append(("statsd", StatsDBackend(backends_cfg.statsd)))
    if backends_cfg.storage.enabled:
        backends.append(("storage", storage_backend(cfg, storage(), clock, f"{_PATH}.storage")))
    if backends_cfg.opentelemetry.enabled:
        backends_cfg.opentelemetry.check_endpoint(f"{_PATH}.opentelemetry")
        if backends_cfg.opentelemetry.metrics:
            from tframex_asgi.metrics.otel_metrics import OpenTelemetryMetricsBackend

            otel = OpenTelemetryMetricsBackend(
                backends_cfg.opentelemetry, export_interval=cfg.export_interval, provider=meter_provider
            )
            backends.append(("opentelemetry", otel))
    for i, custom in enumerate(backends_cfg.custom):
        name = f"custom[{i}]"
        backends.append((name, load_custom_backend(custom, f"{_PATH}.{name}")))
        guarded.append(name)
    return backends, guarded, prometheus


def build_collector(
    cfg: MetricsConfig,
    *,
    events: EventBus,
    clock: Clock,
    storage: Callable[[], Any],
    writer: Callable[[], Any],
    observed: Mapping[str, Callback] = {},
    meter_provider: Any = None,
) -> BuiltMetrics:
    """A collector subscribed to ``events``. ``storage()``: ``(write queue, storage)`` for the
    metrics-table backend, or None with persistence off; ``writer()``: the write queue if there
    is one, read at collection time; ``observed``: more metrics read at collection time."""
    backends, guarded, prometheus = _backends(cfg, clock, storage, meter_provider)
    collector = MetricsCollector(
        backends, max_series=cfg.max_series, export_interval=cfg.export_interval, guarded=guarded
    )
    for name, callback in {**PROCESS_CALLBACKS, **writer_callbacks(writer), **observed}.items():
        collector.observe_with(name, callback)
    events.subscribe(collector.on_event)
    routes: tuple[BaseRoute, ...] = ()
    if prometheus is not None and prometheus.config.port is None:
        routes = (metrics_route(prometheus, collector),)
    return BuiltMetrics(collector, routes)
