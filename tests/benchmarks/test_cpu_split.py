"""benchmarks.bench_cpu_split reads CPU time from /proc: per process, per main thread, per machine."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from benchmarks.bench_cpu_split import _cpu, _machine, _main_thread, _named, _times


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_thread_beside_the_main_one_counts_for_the_process_not_the_main_thread() -> None:
    pid = os.getpid()
    process0, main0 = _cpu(pid), _main_thread(pid)
    worker = threading.Thread(target=_burn, args=(0.3,))
    worker.start()
    worker.join()
    process, main = _cpu(pid) - process0, _main_thread(pid) - main0
    assert process >= 0.25  # clock ticks are 10 ms
    assert main < 0.1
    user, system = _times(pid)
    assert user > 0 and system >= 0
    busy, idle = _machine()
    assert busy > 0 and idle >= 0


def test_processes_by_name_and_a_gone_process() -> None:
    comm = Path("/proc/self/comm").read_text().strip()
    assert os.getpid() in _named((comm,))
    assert os.getpid() not in _named(("no-such-process-name",))
    assert _cpu(2**22 + 12345) == 0.0  # above pid_max's default: no such process
