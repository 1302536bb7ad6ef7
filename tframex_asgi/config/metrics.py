"""``enterprise.metrics``: the seed's Metrics Engine settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tframex_asgi.config._parse import Section
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


def _enabled_shorthand(value: Any, path: str) -> Mapping[str, Any]:
    if isinstance(value, bool):
        return {"enabled": value}
    raise ConfigError(path, f"expected a mapping or true/false, got {value!r}")


@dataclass(frozen=True)
class PrometheusConfig(Section):
    _path: ClassVar[str] = "enterprise.metrics.backends.prometheus"

    enabled: bool = False
    # None serves GET /metrics inside the app (protected by metrics.view); a port starts a
    # separate exposition server on that port.
    port: int | None = None
    host: str = "127.0.0.1"
    path: str = "/metrics"
    multiprocess_dir: str | None = None
    namespace: str = "tframex"

    _shorthand = staticmethod(_enabled_shorthand)

    def _check(self, path: str) -> None:
        if self.port is not None and not 0 < self.port < 65536:
            raise ConfigError(f"{path}.port", f"must be between 1 and 65535, got {self.port}")


@dataclass(frozen=True)
class StatsDConfig(Section):
    _path: ClassVar[str] = "enterprise.metrics.backends.statsd"

    enabled: bool = False
    host: str = "localhost"
    port: int = 8125
    prefix: str = "tframex"
    # dict, not Mapping: the config parser coerces dict[...] fields (into a read-only mapping).
    tags: dict[str, str] = field(default_factory=dict)
    max_packet_bytes: int = 1432

    _shorthand = staticmethod(_enabled_shorthand)

    def _check(self, path: str) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"{path}.port", f"must be between 1 and 65535, got {self.port}")


@dataclass(frozen=True)
class OpenTelemetryConfig(Section):
    _path: ClassVar[str] = "enterprise.metrics.backends.opentelemetry"

    enabled: bool = False
    endpoint: str | None = None
    service_name: str = "tframex-asgi"
    sample_ratio: float = 1.0
    headers: dict[str, str] = field(default_factory=dict)
    # Export spans over OTLP/HTTP (<endpoint>/v1/traces).
    traces: bool = True
    # Export every declared metric over OTLP/HTTP (<endpoint>/v1/metrics) every export_interval.
    metrics: bool = True

    _shorthand = staticmethod(_enabled_shorthand)

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

    _shorthand = staticmethod(_enabled_shorthand)

    def _check(self, path: str) -> None:
        if self.retention_days < 0:
            raise ConfigError(f"{path}.retention_days", f"must be 0 (keep) or more days, got {self.retention_days}")
        if not 0 < len(self.source) <= 100:
            raise ConfigError(f"{path}.source", "must be 1 to 100 characters (the column is VARCHAR(100))")


@dataclass(frozen=True)
class CustomBackendConfig(Section):
    _path: ClassVar[str] = "enterprise.metrics.backends.custom[]"

    # "package.module:ClassName" or "package.module.ClassName"
    class_path: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    _aliases: ClassVar[dict[str, str]] = {"class": "class_path"}

    def _check(self, path: str) -> None:
        if not self.class_path:
            raise ConfigError(f"{path}.class", "is required (an import path such as 'pkg.mod:Backend')")


@dataclass(frozen=True)
class MetricsBackendsConfig(Section):
    _path: ClassVar[str] = "enterprise.metrics.backends"

    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)
    statsd: StatsDConfig = field(default_factory=StatsDConfig)
    opentelemetry: OpenTelemetryConfig = field(default_factory=OpenTelemetryConfig)
    storage: StorageMetricsConfig = field(default_factory=StorageMetricsConfig)
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
    backends: MetricsBackendsConfig = field(default_factory=MetricsBackendsConfig)
    export_interval: float = 60.0
    high_availability: bool = False
    # Series per metric before new label sets collapse into one "<other>" series.
    max_series: int = 1000

    _shorthand = staticmethod(_enabled_shorthand)

    def _check(self, path: str) -> None:
        if not self.export_interval > 0:
            raise ConfigError(f"{path}.export_interval", f"must be above 0, got {self.export_interval}")
        if self.max_series < 1:
            raise ConfigError(f"{path}.max_series", f"must be at least 1, got {self.max_series}")
