"""The seed's Metrics Engine.

- MetricsCollector (:mod:`.collector`): declared metrics fanned out to the backends.
- MetricsExporter: the backends, one :class:`MetricsBackend` protocol (:mod:`.backend`):
  Prometheus (:mod:`.prometheus`), StatsD (:mod:`.statsd`) and user classes named in config.
- TracingSystem (:mod:`.otel`): OpenTelemetry, imported only when configured.
- PerformanceMonitor (:mod:`.middleware`): the HTTP metrics middleware.

Nothing here imports OpenTelemetry or a backend that is not enabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tframex_asgi.metrics.backend import MetricsBackend, Recorder
from tframex_asgi.metrics.collector import MetricsCollector
from tframex_asgi.metrics.middleware import PerformanceMonitor
from tframex_asgi.metrics.spec import CATALOGUE, MetricSpec

if TYPE_CHECKING:
    from tframex_asgi.middleware import MetricsMiddleware

# The seed's name for a backend.
MetricsExporter = MetricsBackend

__all__ = [
    "CATALOGUE",
    "MetricSpec",
    "MetricsBackend",
    "MetricsCollector",
    "MetricsExporter",
    "MetricsMiddleware",
    "PerformanceMonitor",
    "Recorder",
]


def __getattr__(name: str) -> Any:
    # Lazy: the middleware builds a whole stack, which imports this package.
    if name == "MetricsMiddleware":
        from tframex_asgi.middleware import MetricsMiddleware

        return MetricsMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
