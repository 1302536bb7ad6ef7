"""OpenTelemetry metrics over OTLP/HTTP: the declared series as OTel instruments.

Imported only when ``metrics.backends.opentelemetry`` is enabled (with ``metrics: true``, the
default). The SDK aggregates in memory and a periodic reader exports every ``export_interval``
to ``<endpoint>/v1/metrics`` (the collector of the traces: ``/v1/traces`` becomes
``/v1/metrics``). Counters and histograms map to OTel counters and histograms (the histogram
buckets are the declared ones, durations in seconds); gauges are observable gauges reading the
value this backend keeps, so both ``set`` and ``inc`` (in-flight requests) work.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tframex_asgi.config.metrics import OpenTelemetryConfig
from tframex_asgi.errors import ConfigError
from tframex_asgi.metrics.backend import Exemplar, Recorder
from tframex_asgi.metrics.spec import MetricSpec

try:
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ConfigError(
        "enterprise.metrics.backends.opentelemetry",
        f"OpenTelemetry is not installed ({exc.name}): pip install 'tframex-asgi[otel]'",
    ) from exc

__all__ = ["OpenTelemetryMetricsBackend", "metrics_url"]


def metrics_url(endpoint: str) -> str:
    """OTLP/HTTP's metrics URL for ``endpoint``: a bare collector address or its traces URL."""
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    if path in ("", "/"):
        path = "/v1/metrics"
    elif path.endswith("/v1/traces"):
        path = path[: -len("/v1/traces")] + "/v1/metrics"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


class _Counter:
    __slots__ = ("attrs", "instrument")

    def __init__(self, instrument: Any, attrs: dict[str, str]) -> None:
        self.instrument = instrument
        self.attrs = attrs

    def inc(self, amount: float = 1.0) -> None:
        if amount > 0:  # OTel counters are monotonic
            self.instrument.add(amount, self.attrs)

    def observe(self, value: float, exemplar: Exemplar | None = None) -> None:
        self.instrument.record(value, self.attrs)

    def set(self, value: float) -> None:
        pass  # counters are never set


class _Gauge:
    __slots__ = ("attrs", "lock", "value")

    def __init__(self, attrs: dict[str, str]) -> None:
        self.attrs = attrs
        self.value = 0.0
        self.lock = threading.Lock()  # the reader calls back from its own thread

    def inc(self, amount: float = 1.0) -> None:
        with self.lock:
            self.value += amount

    def set(self, value: float) -> None:
        with self.lock:
            self.value = value

    def observe(self, value: float, exemplar: Exemplar | None = None) -> None:
        self.set(value)


class OpenTelemetryMetricsBackend:
    def __init__(self, config: OpenTelemetryConfig, *, export_interval: float, provider: Any = None) -> None:
        self.config = config
        self._owned = provider is None
        if provider is None:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            # No endpoint: the exporter's own default (OTEL_EXPORTER_OTLP_* or localhost:4318).
            endpoint = metrics_url(config.endpoint) if config.endpoint else None
            exporter = OTLPMetricExporter(endpoint=endpoint, headers=dict(config.headers) or None)
            reader = PeriodicExportingMetricReader(exporter, export_interval_millis=export_interval * 1000.0)
            provider = MeterProvider(
                resource=Resource.create({"service.name": config.service_name}), metric_readers=[reader]
            )
        self.provider = provider
        self.meter = provider.get_meter("tframex_asgi")
        self._instruments: dict[str, Any] = {}
        self._gauges: dict[str, list[_Gauge]] = {}
        self._by_labels: dict[tuple[str, tuple[str, ...]], _Gauge] = {}

    def declare(self, spec: MetricSpec) -> None:
        unit = "s" if spec.unit_seconds else ""
        if spec.kind == "counter":
            self._instruments[spec.name] = self.meter.create_counter(spec.name, unit=unit, description=spec.help)
        elif spec.kind == "histogram":
            self._instruments[spec.name] = self.meter.create_histogram(
                spec.name,
                unit=unit,
                description=spec.help,
                explicit_bucket_boundaries_advisory=list(spec.buckets) or None,
            )
        else:
            series = self._gauges.setdefault(spec.name, [])

            def read(options: CallbackOptions, series: list[_Gauge] = series) -> list[Observation]:
                return [Observation(g.value, g.attrs) for g in list(series)]

            self._instruments[spec.name] = self.meter.create_observable_gauge(
                spec.name, callbacks=[read], unit=unit, description=spec.help
            )

    def bind(self, spec: MetricSpec, labels: tuple[str, ...]) -> Recorder:
        attrs = dict(zip(spec.labels, labels, strict=True))
        if spec.kind == "gauge":
            # Observed gauges are bound again on every push: one series per label set.
            gauge = self._by_labels.get((spec.name, labels))
            if gauge is None:
                gauge = self._by_labels[(spec.name, labels)] = _Gauge(attrs)
                self._gauges[spec.name].append(gauge)
            return gauge
        return _Counter(self._instruments[spec.name], attrs)

    async def stop(self) -> None:
        if self._owned:
            self.provider.shutdown()  # exports what the last interval recorded
