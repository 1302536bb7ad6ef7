"""A benchmark server's own memory figures, for ``benchmarks.bench_rss`` (``GET /__bench/stats``).

Which of the process's memory grows tells the cause apart:

- ``rss_anon_kib`` vs ``rss_file_kib``: heap (and anonymous mmaps) vs mapped files (a database's
  memory-mapped pages would show here);
- ``py_objects`` and ``py_blocks`` (``gc.get_objects()``, ``sys.getallocatedblocks()``): Python
  objects, tracked or not; flat while RSS grows means the growth is below Python;
- glibc's ``mallinfo2()``: ``heap_in_use`` (``uordblks``: bytes malloc handed out and not freed)
  vs ``heap_free`` (``fordblks``: freed but kept by malloc, i.e. fragmentation) and ``mmapped``
  (``hblkhd``: large blocks in their own mapping); the arena figures cover every thread's arena;
- ``?trim=1`` calls ``malloc_trim(0)`` first and reports RSS before and after: what malloc gives
  back was free memory it kept, not memory in use;
- with ``TFX_BENCH_TRACEMALLOC=N`` (frames), ``?snapshot=mark`` keeps a baseline and
  ``?snapshot=diff`` returns the 15 allocation sites that grew most since (Python allocations only);
- ``gc_passes`` and ``gc_ms``: the collector's passes per generation since start, and the ms they
  took with the event loop stopped (a ``gc.callbacks`` timer), for ``benchmarks.bench_gc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from typing import Any
from urllib.parse import parse_qs

__all__ = ["collect", "respond", "start"]

_mark: list[tracemalloc.Snapshot] = []


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"
        )
    ]  # fmt: skip


def _libc() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _libc()


_gc_passes = [0, 0, 0]
_gc_ms = [0.0, 0.0, 0.0]
_gc_started: list[float] = [0.0]


def _gc_timer(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
        return
    generation = info["generation"]
    _gc_passes[generation] += 1
    _gc_ms[generation] += (time.perf_counter() - _gc_started[0]) * 1000


def start() -> None:
    frames = int(os.environ.get("TFX_BENCH_TRACEMALLOC") or 0)
    if frames:
        tracemalloc.start(frames)
    gc.callbacks.append(_gc_timer)


def _status() -> dict[str, int]:
    wanted = {"VmRSS": "rss_kib", "RssAnon": "rss_anon_kib", "RssFile": "rss_file_kib", "VmHWM": "hwm_kib"}
    out: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in wanted:
                out[wanted[key]] = int(value.split()[0])
    return out


def _mallinfo() -> dict[str, int]:
    if _LIBC is None or not hasattr(_LIBC, "mallinfo2"):
        return {}
    _LIBC.mallinfo2.restype = _MallInfo2
    info = _LIBC.mallinfo2()
    return {
        "heap_arena": info.arena,
        "heap_in_use": info.uordblks,
        "heap_free": info.fordblks,
        "mmapped": info.hblkhd,
    }


def collect(trim: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"pid": os.getpid()}
    if trim and _LIBC is not None:
        out["rss_before_trim_kib"] = _status()["rss_kib"]
        _LIBC.malloc_trim(0)
    out.update(_status())
    out.update(_mallinfo())
    out["py_objects"] = len(gc.get_objects())
    out["py_blocks"] = sys.getallocatedblocks()
    out["threads"] = threading.active_count()
    with contextlib.suppress(RuntimeError):  # no running loop
        out["tasks"] = len(asyncio.all_tasks())
    out["fds"] = len(os.listdir("/proc/self/fd"))
    if tracemalloc.is_tracing():
        out["traced"] = tracemalloc.get_traced_memory()[0]
    out["gc_passes"], out["gc_ms"] = list(_gc_passes), [round(ms, 3) for ms in _gc_ms]
    return out


def _snapshot(action: str) -> list[str]:
    if not tracemalloc.is_tracing():
        return ["tracemalloc is off (set TFX_BENCH_TRACEMALLOC=frames)"]
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    if action == "mark" or not _mark:
        _mark[:] = [snap]
        return []
    stats = snap.compare_to(_mark[0], "traceback")[:15]
    lines = []
    for stat in stats:
        lines.append(f"{stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks")
        lines += ["    " + line for line in stat.traceback.format()[-6:]]
    return lines


async def respond(scope: dict[str, Any], send: Any) -> None:
    query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    data = collect(trim=query.get("trim") == "1")
    if "snapshot" in query:
        data["snapshot"] = _snapshot(query["snapshot"])
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
