"""The ``storage`` metrics backend: aggregated series in the seed's ``metrics`` table.

Recording only updates an in-memory aggregate of the series (a few float operations, no I/O);
every ``export_interval`` the aggregates of the interval become rows, submitted to the stack's
write queue (batched, spilled while the database is down, flushed at shutdown), so the request
path never waits on the database. Per series and interval:

- counter: one row, ``value`` = the increase during the interval (series that did not move
  write nothing);
- gauge: one row with the current value (a gauge is a state: written every interval);
- histogram: ``<name>_count``, ``<name>_sum`` and ``<name>_max`` rows for the observations of
  the interval (``metric_type`` "histogram").

``labels`` holds the series' labels by name; ``source`` says which deployment wrote the row.
Rows older than ``retention_days`` are deleted at start and then hourly.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tframex_asgi.errors import ConfigError
from tframex_asgi.ids import new_time_uuid
from tframex_asgi.metrics.backend import Exemplar, Recorder
from tframex_asgi.metrics.spec import MetricSpec
from tframex_asgi.util import cancel_and_wait, naive_utc

if TYPE_CHECKING:
    from tframex_asgi.clock import Clock
    from tframex_asgi.config.metrics import MetricsConfig, StorageMetricsConfig
    from tframex_asgi.storage.base import BaseStorage
    from tframex_asgi.storage.queue import WriteQueue

__all__ = ["StorageMetricsBackend"]

logger = logging.getLogger("tframex_asgi.metrics")
PRUNE_EVERY = 3600.0  # seconds between retention passes


class _Series:
    """One series' aggregate over the current interval."""

    __slots__ = ("count", "labels", "max", "spec", "sum", "value")

    def __init__(self, spec: MetricSpec, labels: dict[str, str]) -> None:
        self.spec = spec
        self.labels = labels
        self.value: float | None = None  # counter increase / gauge value
        self.count = 0
        self.sum = 0.0
        self.max = float("-inf")

    def inc(self, amount: float = 1.0) -> None:
        self.value = (self.value or 0.0) + amount

    def set(self, value: float) -> None:
        self.value = value

    def observe(self, value: float, exemplar: Exemplar | None = None) -> None:
        self.count += 1
        self.sum += value
        if value > self.max:
            self.max = value

    def take(self) -> list[tuple[str, float]]:
        """``(metric_name, value)`` rows of the interval, and reset what accumulates."""
        name, kind = self.spec.name, self.spec.kind
        if kind == "histogram":
            if not self.count:
                return []
            rows = [(f"{name}_count", float(self.count)), (f"{name}_sum", self.sum), (f"{name}_max", self.max)]
            self.count, self.sum, self.max = 0, 0.0, float("-inf")
            return rows
        if self.value is None:
            return []
        value = self.value
        if kind == "counter":
            if value == 0:
                return []
            self.value = None  # the next interval counts from zero
        return [(name, value)]


class StorageMetricsBackend:
    def __init__(
        self,
        config: StorageMetricsConfig,
        writer: WriteQueue,
        storage: BaseStorage,
        clock: Clock,
        *,
        export_interval: float = 60.0,
    ) -> None:
        self.config = config
        self.writer = writer
        self.storage = storage
        self.clock = clock
        self.export_interval = export_interval
        self.specs: dict[str, MetricSpec] = {}
        self._series: dict[tuple[str, tuple[str, ...]], _Series] = {}
        self._task: asyncio.Task[None] | None = None
        self._pruned_at = float("-inf")
        self.rows_written = 0

    # -- protocol ------------------------------------------------------------------------

    def declare(self, spec: MetricSpec) -> None:
        self.specs[spec.name] = spec

    def bind(self, spec: MetricSpec, labels: tuple[str, ...]) -> Recorder:
        key = (spec.name, labels)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(spec, dict(zip(spec.labels, labels, strict=True)))
        return series

    # -- export --------------------------------------------------------------------------

    def _now(self) -> datetime:
        return naive_utc(self.clock.time())

    def export(self) -> int:
        """Submit the rows of the interval that just ended; how many there were."""
        now = self._now()
        count = 0
        for series in self._series.values():
            kind = series.spec.kind
            for name, value in series.take():
                self.writer.submit(
                    "metrics",
                    {
                        "id": new_time_uuid(),
                        "metric_name": name,
                        "metric_type": kind,
                        "value": value,
                        "labels": dict(series.labels),
                        "timestamp": now,
                        "source": self.config.source,
                    },
                    trusted=True,
                )
                count += 1
        self.rows_written += count
        return count

    async def prune(self) -> int:
        """Delete rows past the retention (0 days: keep everything)."""
        self._pruned_at = self.clock.monotonic()
        if not self.config.retention_days:
            return 0
        cutoff = self._now() - timedelta(days=self.config.retention_days)
        return await self.storage.delete_older_than("metrics", "timestamp", cutoff)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.export_interval)
            self.export()
            if self.clock.monotonic() - self._pruned_at >= PRUNE_EVERY:
                try:
                    await self.prune()
                except Exception:  # the database may be down: the next pass tries again
                    logger.warning("metrics retention pass failed", exc_info=True)

    async def start(self) -> None:
        try:
            await self.prune()
        except Exception:
            logger.warning("metrics retention pass failed", exc_info=True)
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        self.export()  # the last partial interval: the write queue flushes it at shutdown

    def __repr__(self) -> str:
        return f"StorageMetricsBackend(series={len(self._series)}, rows_written={self.rows_written})"


def storage_backend(
    cfg: MetricsConfig, parts: tuple[Any, BaseStorage] | None, clock: Clock, path: str
) -> StorageMetricsBackend:
    """The backend writing to ``parts`` = (write queue, storage); None (persistence off) is refused."""
    if parts is None:
        raise ConfigError(path, "writes to the metrics table: needs persistence enabled (enable_persistence=True)")
    writer, storage = parts
    return StorageMetricsBackend(cfg.backends.storage, writer, storage, clock, export_interval=cfg.export_interval)
