"""Prometheus backend on prometheus-client: a per-stack registry, or multiprocess mode.

One process: every stack gets its own ``CollectorRegistry`` (several stacks in one process
never collide), observed metrics are read by a collector at scrape time, and histograms carry
trace-id exemplars in the OpenMetrics format. Several workers (uvicorn/gunicorn): values live in
``PROMETHEUS_MULTIPROC_DIR`` files and any worker's exposition sums them all.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, start_http_server
from prometheus_client.registry import Collector

from tframex_asgi.config.metrics import PrometheusConfig
from tframex_asgi.errors import ConfigError
from tframex_asgi.metrics.backend import Callback, Exemplar, Recorder
from tframex_asgi.metrics.spec import MetricSpec

__all__ = ["MultiprocessPrometheusBackend", "PrometheusBackend", "prometheus_backend"]

logger = logging.getLogger("tframex_asgi.metrics")
ENV = "PROMETHEUS_MULTIPROC_DIR"


class _CallbackCollector(Collector):
    """An observed metric read from its callback on each scrape."""

    def __init__(self, name: str, spec: MetricSpec, callback: Callback) -> None:
        self.name, self.spec, self.callback = name, spec, callback

    def _family(self) -> CounterMetricFamily | GaugeMetricFamily:
        cls = CounterMetricFamily if self.spec.kind == "counter" else GaugeMetricFamily
        return cls(self.name, self.spec.help, labels=list(self.spec.labels))

    def describe(self) -> Iterator[Metric]:
        # Describing without samples keeps registration from calling the callback.
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        try:
            for labels, value in self.callback():
                family.add_metric(list(labels), value)
        except Exception:
            logger.exception("metrics callback for %s failed", self.name)
        yield family


class _CounterRecorder:
    """A bound counter child, updated through its value directly.

    prometheus-client's ``inc`` re-checks on every call that the child has its labels (two
    method calls); the collector binds children once, so that check is done here, once.
    """

    __slots__ = ("_child", "_value")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._value = child._value

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self._value.inc(amount)

    def observe(self, value: float, exemplar: Exemplar | None = None) -> None:
        self._child.observe(value, exemplar)  # not a histogram: raises as the child would

    def set(self, value: float) -> None:
        self._child.set(value)


class _HistogramRecorder:
    """A bound histogram child: the bucket is found by bisection instead of a linear scan, and
    the same values are updated as ``Histogram.observe`` would (``le`` buckets: the first bound
    ``>= value``). Exemplars and NaN take the child's own path."""

    __slots__ = ("_bounds", "_buckets", "_child", "_sum")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._sum = child._sum
        self._buckets = child._buckets
        self._bounds = tuple(child._upper_bounds)

    def inc(self, amount: float = 1.0) -> None:
        self._child.inc(amount)

    def observe(self, value: float, exemplar: Exemplar | None = None) -> None:
        if exemplar or math.isnan(value):
            self._child.observe(value, exemplar)
            return
        self._sum.inc(value)
        self._buckets[bisect_left(self._bounds, value)].inc(1)

    def set(self, value: float) -> None:
        self._child.set(value)


def _recorder(child: Any) -> Recorder:
    """The fast recorder of a bound prometheus-client child when its internals are the known
    ones (checked once, when binding), else the child itself."""
    if type(child) is Counter and getattr(child, "_labelvalues", None) and hasattr(child, "_value"):
        return _CounterRecorder(child)
    if type(child) is Histogram and getattr(child, "_labelvalues", None):
        bounds = getattr(child, "_upper_bounds", None)
        buckets = getattr(child, "_buckets", None)
        if (
            isinstance(bounds, list | tuple)
            and isinstance(buckets, list)
            and len(bounds) == len(buckets)
            and bounds
            and bounds[-1] == math.inf
            and list(bounds) == sorted(bounds)
            and hasattr(child, "_sum")
        ):
            return _HistogramRecorder(child)
    return child  # type: ignore[no-any-return]


class PrometheusBackend:
    """Single-process Prometheus backend. ``bind`` returns prometheus-client's own children
    (counters and histograms behind a thin recorder that skips the per-call label check), so
    recording costs one prometheus-client value update."""

    multiprocess = False

    def __init__(self, config: PrometheusConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.namespace = config.namespace
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics: dict[str, Any] = {}
        self._server: Any = None

    def full_name(self, spec: MetricSpec) -> str:
        return f"{self.namespace}_{spec.name}" if self.namespace else spec.name

    def _create(self, spec: MetricSpec, registry: CollectorRegistry | None) -> Any:
        name, labels = self.full_name(spec), spec.labels
        if spec.kind == "counter":
            return Counter(name, spec.help, labels, registry=registry)
        if spec.kind == "histogram":
            return Histogram(
                name, spec.help, labels, registry=registry, buckets=spec.buckets or Histogram.DEFAULT_BUCKETS
            )
        if spec.per_process:
            return Gauge(name, spec.help, labels, registry=registry, multiprocess_mode="liveall")
        return Gauge(name, spec.help, labels, registry=registry, multiprocess_mode="livesum")

    def declare(self, spec: MetricSpec) -> None:
        if not spec.observed:
            self.metrics[spec.name] = self._create(spec, self.registry)

    def bind(self, spec: MetricSpec, labels: tuple[str, ...]) -> Recorder:
        metric = self.metrics[spec.name]
        return _recorder(metric.labels(*labels)) if labels else metric  # type: ignore[no-any-return]

    def register_callback(self, spec: MetricSpec, callback: Callback) -> None:
        self.registry.register(_CallbackCollector(self.full_name(spec), spec, callback))

    # -- exposition ----------------------------------------------------------------------

    @property
    def exposition_registry(self) -> CollectorRegistry:
        return self.registry

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format the scraper asked for (OpenMetrics carries exemplars)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.exposition_registry), content_type

    async def start(self) -> None:
        if self.config.port is not None:
            # A separate exposition port (no auth: bind it to a private interface).
            self._server, _thread = start_http_server(
                self.config.port, addr=self.config.host, registry=self.exposition_registry
            )
            logger.info("Prometheus metrics on http://%s:%s/", self.config.host, self.config.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            # shutdown() waits for the serving thread's poll loop: off the event loop.
            await asyncio.to_thread(server.shutdown)
            server.server_close()


class MultiprocessPrometheusBackend(PrometheusBackend):
    """Values in per-process files; observed metrics are pushed (no ``register_callback``):
    a scrape reads the files, not this process's callbacks."""

    multiprocess = True
    # Another worker's scrape reads this worker's file: a gauge sampled every export_interval
    # would show a stale value there (an idle worker still counting the request it served at
    # its last sample), so the collector writes live gauges at every change.
    live_gauges = True

    def __init__(self, config: PrometheusConfig, directory: str) -> None:
        super().__init__(config, CollectorRegistry())
        self.directory = directory
        multiprocess.MultiProcessCollector(self.registry, path=directory)  # type: ignore[no-untyped-call]

    def declare(self, spec: MetricSpec) -> None:
        # registry=None: the values go to the mmap files, the exposition reads them back.
        self.metrics[spec.name] = self._create(spec, None)

    register_callback = None  # type: ignore[assignment]

    async def stop(self) -> None:
        await super().stop()
        # Live gauges (in flight, queue depth, memory) of this worker leave the exposition.
        multiprocess.mark_process_dead(os.getpid(), self.directory)  # type: ignore[no-untyped-call]


def _enable_multiprocess(directory: str, path: str) -> None:
    current = os.environ.get(ENV)
    if current and os.path.realpath(current) != os.path.realpath(directory):
        raise ConfigError(path, f"{ENV} is already set to {current!r}, a different directory")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise ConfigError(path, f"cannot create {directory!r}: {exc}") from exc
    os.environ[ENV] = directory
    if not getattr(values.ValueClass, "_multiprocess", False):
        # prometheus-client picks its value class when first imported: switch it now that the
        # config asks for multiprocess mode (set the env var before start to avoid this).
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def prometheus_backend(config: PrometheusConfig, path: str) -> PrometheusBackend:
    """Multiprocess when ``multiprocess_dir`` is configured or ``PROMETHEUS_MULTIPROC_DIR`` is set."""
    directory = config.multiprocess_dir or os.environ.get(ENV)
    if directory:
        _enable_multiprocess(directory, f"{path}.multiprocess_dir")
        return MultiprocessPrometheusBackend(config, directory)
    return PrometheusBackend(config)
