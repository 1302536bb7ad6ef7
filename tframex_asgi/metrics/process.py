"""Callbacks for observed metrics: process resources and the write queue's stats.

They run at scrape time (possibly on Prometheus's exposition thread) or every export interval,
so they only read: ``/proc`` on Linux, ``os.times()``, and the writer's integer attributes.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable, Iterable
from typing import Any

from tframex_asgi.metrics.backend import Callback, Sample

__all__ = ["PROCESS_CALLBACKS", "cpu_seconds", "open_fds", "resident_bytes", "writer_callbacks"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def cpu_seconds() -> Iterable[Sample]:
    t = os.times()
    return [((), t.user + t.system)]


def resident_bytes() -> Iterable[Sample]:
    try:
        with open("/proc/self/statm", "rb") as f:
            return [((), float(int(f.read().split()[1]) * _PAGE))]
    except (OSError, IndexError, ValueError):
        # No /proc (macOS): the peak RSS is the best cheap approximation (bytes there, KiB on Linux).
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return [((), float(peak if sys.platform == "darwin" else peak * 1024))]


def open_fds() -> Iterable[Sample]:
    try:
        return [((), float(len(os.listdir("/proc/self/fd"))))]
    except OSError:
        return []


def writer_callbacks(current: Callable[[], Any]) -> dict[str, Callback]:
    """Queue depth and spill/drop totals of the write queue ``current()`` returns (None when
    there is none), looked up at collection time: the queue may be created after the collector."""

    def stat(attr: str) -> Callable[[], Iterable[Sample]]:
        def read() -> Iterable[Sample]:
            writer = current()
            value = getattr(writer, attr, None) if writer is not None else None
            return [((), float(value))] if isinstance(value, int | float) else []

        return read

    return {
        "audit_queue_depth": stat("depth"),
        "audit_spilled_total": stat("spilled_total"),
        "audit_dropped_total": stat("dropped_total"),
    }


PROCESS_CALLBACKS: dict[str, Callback] = {
    "process_cpu_seconds_total": cpu_seconds,
    "process_resident_memory_bytes": resident_bytes,
    "process_open_fds": open_fds,
}
