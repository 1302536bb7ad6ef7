"""``enterprise.metrics``: the seed's Metrics Engine settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tframex_asgi.config._parse import Section, enabled_shorthand
from tframex_asgi.errors import ConfigError

__all__ = [
    "CustomBackendConfig",
    "MetricsBackendsConfig",
    "MetricsConfig",
    "OpenTelemetryConfig",
    "PrometheusConfig",
    "StatsDConfig",
    "StorageMetricsConfig",
]


@dataclass(frozen=True)
class PrometheusConfig(Section):
    _path: ClassVar[str] = "enterprise.metrics.backends.prometheus"

    # Serve the Prometheus exposition. Also used when metrics are on and no backend at all is
    # enabled (naming any other backend means exactly those).
    enabled: bool = False
    # None serves GET /metrics inside the app (protected by metrics.view); a port starts a
    # separate exposition server on that port.
    port: int | None = None
    # Interface the separate exposition server listens on (only with `port`). That server has no
    # authentication: keep it on a private interface.
    host: str = "127.0.0.1"
    # Path of the in-app scrape route (with `port` null), which needs metrics.view whatever the
    # path. Not used when `port` is set.
    path: str = "/metrics"
    # Directory of prometheus-client's multiprocess files, the same for every worker process: a
    # scrape of any worker sums them all. Created if missing; a PROMETHEUS_MULTIPROC_DIR naming
    # another directory is an error. None: multiprocess mode only when PROMETHEUS_MULTIPROC_DIR is set.
    multiprocess_dir: str | None = None
    # Prefix of every metric name, joined with "_" (tframex_http_requests_total); "" for none.
    namespace: str = "tframex"

    _shorthand = staticmethod(enabled_shorthand)

    def _check(self, path: str) -> None:
        if self.port is not None and not 0 < self.port < 65536:
            raise ConfigError(f"{path}.port", f"must be between 1 and 65535, got {self.port}")


@dataclass(frozen=True)
class StatsDConfig(Section):
    _path: ClassVar[str] = "enterprise.metrics.backends.statsd"

    # Send every metric as StatsD lines over UDP to host:port (a datagram that cannot be sent is
    # dropped, never waited for).
    enabled: bool = False
    # StatsD agent host name or address, resolved once at startup.
    host: str = "localhost"
    # StatsD agent UDP port (1 to 65535).
    port: int = 8125
    # Prepended to every metric name with a "." (tframex.http_requests); "" for none.
    prefix: str = "tframex"
    # Tags added to every metric, in the DogStatsD form (|#key:value).
    tags: dict[str, str] = field(default_factory=dict)
    # Largest datagram in bytes: the lines recorded in one event-loop tick are packed into
    # datagrams of at most this size (a single longer line is sent alone).
    max_packet_bytes: int = 1432

    _shorthand = staticmethod(enabled_shorthand)

    def _check(self, path: str) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"{path}.port", f"must be between 1 and 65535, got {self.port}")


@dataclass(frozen=True)
class OpenTelemetryConfig(Section):
    _path: ClassVar[str] = "enterprise.metrics.backends.opentelemetry"

    # Export to an OTLP/HTTP collector (needs the `otel` extra): spans (`traces`) and metrics
    # (`metrics`).
    enabled: bool = False
    # Collector URL such as http://collector:4318: without a path, /v1/traces and /v1/metrics are
    # appended; a path is used as is (a /v1/traces path becomes /v1/metrics for metrics). None: the
    # exporter's default (OTEL_EXPORTER_OTLP_* variables, else localhost:4318). Jaeger's Thrift
    # collector (port 14268, /api/traces) is refused when the stack is built.
    endpoint: str | None = None
    # The service.name resource attribute of the exported spans and metrics.
    service_name: str = "tframex-asgi"
    # Fraction (0 to 1) of new traces recorded; a request with an incoming trace context follows
    # its parent's sampling decision.
    sample_ratio: float = 1.0
    # HTTP headers sent with every OTLP export (such as the collector's Authorization).
    headers: dict[str, str] = field(default_factory=dict)
    # Export spans over OTLP/HTTP (<endpoint>/v1/traces).
    traces: bool = True
    # Export every declared metric over OTLP/HTTP (<endpoint>/v1/metrics) every export_interval.
    metrics: bool = True

    _shorthand = staticmethod(enabled_shorthand)

    def _check(self, path: str) -> None:
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ConfigError(f"{path}.sample_ratio", f"must be between 0 and 1, got {self.sample_ratio}")

    def check_endpoint(self, path: str) -> None:
        """Refuse an endpoint that cannot take OTLP (checked when the stack is built, so a
        config file with the seed's Jaeger URL still loads for ``config check`` to explain)."""
        from urllib.parse import urlsplit

        if not self.endpoint:
            return
        parts = urlsplit(self.endpoint)
        if parts.port == 14268 or parts.path.rstrip("/").endswith("/api/traces"):
            host = parts.hostname or "jaeger"
            raise ConfigError(
                f"{path}.endpoint",
                f"{self.endpoint!r} is Jaeger's Thrift collector (port 14268, /api/traces), which does not "
                f"accept OTLP: use Jaeger's OTLP/HTTP receiver instead, endpoint: http://{host}:4318 "
                "(Jaeger >= 1.35 with COLLECTOR_OTLP_ENABLED=true, or an OpenTelemetry Collector)",
            )


@dataclass(frozen=True)
class StorageMetricsConfig(Section):
    """Aggregated series written to the seed's ``metrics`` table every ``export_interval``."""

    _path: ClassVar[str] = "enterprise.metrics.backends.storage"

    # Needs persistence enabled: the rows go to its storage, through the write queue.
    enabled: bool = False
    # Rows older than this are deleted (checked at start and hourly); 0 keeps them forever.
    retention_days: int = 30
    # The rows' source column: which deployment wrote them.
    source: str = "tframex-asgi"

    _shorthand = staticmethod(enabled_shorthand)

    def _check(self, path: str) -> None:
        if self.retention_days < 0:
            raise ConfigError(f"{path}.retention_days", f"must be 0 (keep) or more days, got {self.retention_days}")
        if not 0 < len(self.source) <= 100:
            raise ConfigError(f"{path}.source", "must be 1 to 100 characters (the column is VARCHAR(100))")


@dataclass(frozen=True)
class CustomBackendConfig(Section):
    _path: ClassVar[str] = "enterprise.metrics.backends.custom[]"

    # Import path of the backend class (required): "package.module:ClassName" or
    # "package.module.ClassName".
    class_path: str = ""
    # Keyword arguments the class is called with.
    options: dict[str, Any] = field(default_factory=dict)

    _aliases: ClassVar[dict[str, str]] = {"class": "class_path"}

    def _check(self, path: str) -> None:
        if not self.class_path:
            raise ConfigError(f"{path}.class", "is required (an import path such as 'pkg.mod:Backend')")


@dataclass(frozen=True)
class MetricsBackendsConfig(Section):
    _path: ClassVar[str] = "enterprise.metrics.backends"

    # Prometheus exposition, in the app (GET /metrics) or on its own port.
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)
    # StatsD (DogStatsD tags) over UDP.
    statsd: StatsDConfig = field(default_factory=StatsDConfig)
    # OpenTelemetry traces and metrics over OTLP/HTTP.
    opentelemetry: OpenTelemetryConfig = field(default_factory=OpenTelemetryConfig)
    # Aggregated series in the seed's metrics table (needs persistence).
    storage: StorageMetricsConfig = field(default_factory=StorageMetricsConfig)
    # Your own backends, each built as class_path(**options); they must implement declare(spec)
    # and bind(spec, labels). Any entry counts as a named backend.
    custom: tuple[CustomBackendConfig, ...] = ()

    _aliases: ClassVar[dict[str, str]] = {"otel": "opentelemetry"}

    @staticmethod
    def _shorthand(value: Any, path: str) -> Mapping[str, Any]:
        # The seed's kwargs form: backends=["prometheus", "statsd"].
        if isinstance(value, list | tuple):
            out: dict[str, Any] = {}
            for i, name in enumerate(value):
                if name not in ("prometheus", "statsd", "opentelemetry", "otel", "storage"):
                    raise ConfigError(
                        f"{path}[{i}]",
                        f"unknown metrics backend {name!r} (prometheus, statsd, opentelemetry, storage)",
                    )
                out[name] = {"enabled": True}
            return out
        raise ConfigError(path, f"expected a mapping or a list of backend names, got {value!r}")

    @property
    def any_enabled(self) -> bool:
        return (
            self.prometheus.enabled
            or self.statsd.enabled
            or self.opentelemetry.enabled
            or self.storage.enabled
            or bool(self.custom)
        )


@dataclass(frozen=True)
class MetricsConfig(Section):
    _path: ClassVar[str] = "enterprise.metrics"

    enabled: bool = False
    # Where metrics go. With none enabled (and no `custom`), Prometheus in the app.
    backends: MetricsBackendsConfig = field(default_factory=MetricsBackendsConfig)
    export_interval: float = 60.0
    high_availability: bool = False
    # Series per metric before new label sets collapse into one "<other>" series.
    max_series: int = 1000

    _shorthand = staticmethod(enabled_shorthand)

    def _check(self, path: str) -> None:
        if not self.export_interval > 0:
            raise ConfigError(f"{path}.export_interval", f"must be above 0, got {self.export_interval}")
        if self.max_series < 1:
            raise ConfigError(f"{path}.max_series", f"must be at least 1, got {self.max_series}")
