"""MetricsCollector: the declared metrics fanned out to the enabled backends.

Recording never raises and never blocks: series are bound once per label set and cached (the
prometheus-client pitfall: resolving ``.labels()`` per update costs more than the update), each
instrument has a series cap past which label sets collapse to ``<other>``, and a backend that
fails to bind gets a no-op recorder. Agent, tool and flow metrics come from the event bus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tframex_asgi.events import AgentFinished, Event, FlowFinished, FlowStepFinished, ToolCalled
from tframex_asgi.metrics.backend import (
    Callback,
    FanoutRecorder,
    MetricsBackend,
    NullRecorder,
    Recorder,
    SafeRecorder,
)
from tframex_asgi.metrics.spec import CATALOGUE, OTHER, MetricSpec
from tframex_asgi.util import cancel_and_wait

__all__ = ["MetricsCollector"]

logger = logging.getLogger("tframex_asgi.metrics")
_NULL = NullRecorder()
# "cancelled": a streamed run whose client disconnected (see endpoint/sse.py).
_STATUSES = frozenset(("success", "error", "cancelled"))
_MAX_LABEL = 128


def _label(value: object) -> str:
    text = str(value)
    return text if len(text) <= _MAX_LABEL else text[:_MAX_LABEL]


class MetricsCollector:
    """Owns the backends of one stack. ``child(name, labels)`` is the recording entry point."""

    def __init__(
        self,
        backends: Sequence[tuple[str, MetricsBackend]],
        *,
        specs: Iterable[MetricSpec] = CATALOGUE.values(),
        max_series: int = 1000,
        export_interval: float = 60.0,
        guarded: Iterable[str] = (),
    ) -> None:
        if max_series < 1:
            raise ValueError("max_series must be at least 1")
        self.backends = tuple(backends)
        self.specs = {s.name: s for s in specs}
        self.max_series = max_series
        self.export_interval = export_interval
        self._guarded = frozenset(guarded)  # backend names whose recorders get a SafeRecorder
        self._children: dict[str, dict[tuple[str, ...], Recorder]] = {name: {} for name in self.specs}
        self._pull = tuple(b for _, b in self.backends if callable(getattr(b, "register_callback", None)))
        self._push_names = tuple(n for n, b in self.backends if b not in self._pull)
        self._callbacks: dict[str, Callback] = {}
        self._last: dict[tuple[str, tuple[str, ...]], float] = {}
        self._sampler: asyncio.Task[None] | None = None
        for spec in self.specs.values():
            for _, backend in self.backends:
                backend.declare(spec)
        self._handlers: dict[type, Callable[[Any], None]] = {
            AgentFinished: self._agent,
            ToolCalled: self._tool,
            FlowFinished: self._flow,
            FlowStepFinished: self._step,
        }

    # -- recording -----------------------------------------------------------------------

    def child(self, name: str, labels: tuple[str, ...] = ()) -> Recorder:
        """The recorder of one series, bound on first use and cached."""
        cache = self._children[name]
        recorder = cache.get(labels)
        if recorder is None:
            recorder = self._bind(name, labels, cache)
        return recorder

    def _bind(self, name: str, labels: tuple[str, ...], cache: dict[tuple[str, ...], Recorder]) -> Recorder:
        spec = self.specs[name]
        if len(cache) >= self.max_series:
            # Bounded cardinality: past the cap every new label set lands in one series.
            labels = (OTHER,) * len(spec.labels)
            if labels in cache:
                return cache[labels]
        recorders: list[Recorder] = []
        for backend_name, backend in self.backends:
            try:
                recorder = backend.bind(spec, labels)
            except Exception:
                logger.exception("metrics backend %s could not bind %s%r", backend_name, name, labels)
                continue
            recorders.append(SafeRecorder(recorder, name) if backend_name in self._guarded else recorder)
        result: Recorder = (
            _NULL if not recorders else recorders[0] if len(recorders) == 1 else FanoutRecorder(recorders)
        )
        cache[labels] = result
        return result

    def live_recorder(self, name: str) -> Recorder | None:
        """The recorder of an observed gauge (no labels) in the backends that need it written
        at every change (``live_gauges``: multiprocess Prometheus), or None when none does."""
        spec = self.specs[name]
        recorders = [b.bind(spec, ()) for _, b in self.backends if getattr(b, "live_gauges", False)]
        if not recorders:
            return None
        return recorders[0] if len(recorders) == 1 else FanoutRecorder(recorders)

    def series_count(self, name: str) -> int:
        return len(self._children[name])

    # -- events --------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    @staticmethod
    def _status(status: str) -> str:
        return status if status in _STATUSES else OTHER

    def _agent(self, e: AgentFinished) -> None:
        agent = _label(e.agent_name)
        self.child("agent_executions_total", (agent, self._status(e.status))).inc()
        self.child("agent_duration_seconds", (agent,)).observe(e.duration_ms / 1000.0)

    def _tool(self, e: ToolCalled) -> None:
        tool = _label(e.tool_name)
        kind = e.tool_type if e.tool_type in ("native", "mcp", "agent") else OTHER
        self.child("tool_calls_total", (tool, kind, self._status(e.status))).inc()
        self.child("tool_duration_seconds", (tool, kind)).observe(e.duration_ms / 1000.0)

    def _flow(self, e: FlowFinished) -> None:
        flow = _label(e.flow_name)
        self.child("flow_executions_total", (flow, self._status(e.status))).inc()
        self.child("flow_duration_seconds", (flow,)).observe(e.duration_ms / 1000.0)

    def _step(self, e: FlowStepFinished) -> None:
        labels = (_label(e.flow_name), _label(e.step_name), self._status(e.status))
        self.child("flow_step_duration_seconds", labels).observe(e.duration_ms / 1000.0)

    # -- observed metrics ----------------------------------------------------------------

    def observe_with(self, name: str, callback: Callback) -> None:
        """Read ``name`` from ``callback`` at collection time (pull backends) or every
        ``export_interval`` (push backends). The callback must be quick and thread-safe:
        Prometheus may call it from its exposition thread."""
        spec = self.specs[name]
        for backend in self._pull:
            backend.register_callback(spec, callback)  # type: ignore[attr-defined]
        self._callbacks[name] = callback

    def sample(self) -> None:
        """Push observed values to the backends that do not pull them."""
        if not self._push_names:
            return
        push = tuple((n, b) for n, b in self.backends if n in self._push_names)
        for name, callback in self._callbacks.items():
            spec = self.specs[name]
            try:
                samples = list(callback())
            except Exception:
                logger.exception("metrics callback for %s failed", name)
                continue
            for labels, value in samples:
                key = (name, labels)
                for backend_name, backend in push:
                    try:
                        recorder = backend.bind(spec, labels)
                        if spec.kind == "counter":
                            # Observed counters are running totals: push backends get the delta.
                            delta = value - self._last.get(key, 0.0)
                            if delta > 0:
                                recorder.inc(delta)
                        else:
                            recorder.set(value)
                    except Exception:
                        logger.exception("metrics backend %s failed on %s", backend_name, name)
                self._last[key] = value

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self.export_interval)
            self.sample()

    # -- lifespan ------------------------------------------------------------------------

    async def start(self) -> None:
        for _, backend in self.backends:
            start = getattr(backend, "start", None)
            if callable(start):
                await start()
        if self._push_names and self._callbacks:
            self.sample()
            self._sampler = asyncio.ensure_future(self._sample_forever())

    async def stop(self) -> None:
        if self._sampler is not None:
            await cancel_and_wait(self._sampler)
            self._sampler = None
            self.sample()
        for backend_name, backend in reversed(self.backends):
            stop = getattr(backend, "stop", None)
            if callable(stop):
                try:
                    await stop()
                except Exception:
                    logger.exception("metrics backend %s failed to stop", backend_name)
