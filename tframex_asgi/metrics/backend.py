"""The metrics backend protocol (the seed's MetricsExporter) and custom backend loading.

A backend is told every metric once (``declare``) when the stack is built, then hands out a
:class:`Recorder` per label set (``bind``); the collector caches those, so the hot path is a
dict lookup plus the backend's own update. Optional capabilities are found when the stack is
built, never per request:

- ``async start()`` / ``async stop()``: run at lifespan startup / shutdown.
- ``register_callback(spec, callback)``: the backend pulls observed metrics itself at
  collection time (Prometheus); otherwise the collector pushes them every ``export_interval``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from tframex_asgi.config.metrics import CustomBackendConfig
from tframex_asgi.errors import ConfigError
from tframex_asgi.metrics.spec import MetricSpec

__all__ = [
    "Exemplar",
    "FanoutRecorder",
    "MetricsBackend",
    "NullRecorder",
    "Recorder",
    "SafeRecorder",
    "Sample",
    "load_custom_backend",
]

logger = logging.getLogger("tframex_asgi.metrics")
Exemplar = Mapping[str, str]
# One observed sample: label values (in the spec's label order) and the value.
Sample = tuple[tuple[str, ...], float]


class Recorder(Protocol):
    """One series (a metric with its label values bound). Must never block; the collector
    guards third-party recorders so that they never raise into a request either."""

    def inc(self, amount: float = 1.0) -> None: ...  # counters; gauges (negative to decrease)

    def observe(self, value: float, exemplar: Exemplar | None = None) -> None: ...  # histograms

    def set(self, value: float) -> None: ...  # gauges


@runtime_checkable
class MetricsBackend(Protocol):
    def declare(self, spec: MetricSpec) -> None: ...

    def bind(self, spec: MetricSpec, labels: tuple[str, ...]) -> Recorder: ...


class NullRecorder:
    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        pass

    def observe(self, value: float, exemplar: Exemplar | None = None) -> None:
        pass

    def set(self, value: float) -> None:
        pass


class FanoutRecorder:
    """Several backends' recorders of one series (only used when more than one is enabled)."""

    __slots__ = ("recorders",)

    def __init__(self, recorders: Iterable[Recorder]) -> None:
        self.recorders = tuple(recorders)

    def inc(self, amount: float = 1.0) -> None:
        for r in self.recorders:
            r.inc(amount)

    def observe(self, value: float, exemplar: Exemplar | None = None) -> None:
        for r in self.recorders:
            r.observe(value, exemplar)

    def set(self, value: float) -> None:
        for r in self.recorders:
            r.set(value)


class SafeRecorder:
    """Wraps a custom backend's recorder: a failing backend is logged, never raised."""

    __slots__ = ("inner", "name")

    def __init__(self, inner: Recorder, name: str) -> None:
        self.inner = inner
        self.name = name

    def _failed(self, exc: Exception) -> None:
        logger.warning("metrics backend failed recording %s: %r", self.name, exc)

    def inc(self, amount: float = 1.0) -> None:
        try:
            self.inner.inc(amount)
        except Exception as exc:
            self._failed(exc)

    def observe(self, value: float, exemplar: Exemplar | None = None) -> None:
        try:
            self.inner.observe(value, exemplar)
        except Exception as exc:
            self._failed(exc)

    def set(self, value: float) -> None:
        try:
            self.inner.set(value)
        except Exception as exc:
            self._failed(exc)


Callback = Callable[[], Iterable[Sample]]


def _import(class_path: str, path: str) -> Any:
    module_name, sep, attr = class_path.partition(":")
    if not sep:
        module_name, _, attr = class_path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(path, f"{class_path!r} is not an import path such as 'pkg.mod:Backend'")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(path, f"cannot import {class_path!r}: {exc}") from exc
    return obj


def load_custom_backend(cfg: CustomBackendConfig, path: str) -> MetricsBackend:
    """Instantiate ``cfg.class_path(**cfg.options)`` and check it implements the protocol."""
    cls = _import(cfg.class_path, f"{path}.class")
    try:
        backend = cls(**dict(cfg.options))
    except Exception as exc:
        raise ConfigError(f"{path}.options", f"{cfg.class_path} refused its options: {exc}") from exc
    if not isinstance(backend, MetricsBackend):
        raise ConfigError(f"{path}.class", f"{cfg.class_path} does not implement declare(spec) and bind(spec, labels)")
    return backend
