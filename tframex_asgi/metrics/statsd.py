"""StatsD backend: UDP datagrams written directly, batched per event-loop tick.

Recording appends one line to a buffer and, at most once per tick, schedules a flush that
packs lines into datagrams of at most ``max_packet_bytes``. Sending on a non-blocking UDP
socket never waits; a full socket buffer or an unreachable agent drops the datagram (counted
in ``dropped``) rather than slowing a request. Tags use the DogStatsD ``|#k:v`` form.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket

from tframex_asgi.config.metrics import StatsDConfig
from tframex_asgi.metrics.backend import Exemplar, Recorder
from tframex_asgi.metrics.spec import MetricSpec

__all__ = ["StatsDBackend"]

logger = logging.getLogger("tframex_asgi.metrics")
_BAD = str.maketrans({c: "_" for c in "|,#:@\n\r "})
# Lines kept while no socket exists yet (before startup); older ones are dropped beyond this.
_MAX_PENDING = 10_000


def _clean(value: str) -> str:
    return value.translate(_BAD)


def _num(value: float) -> str:
    # Plain decimals: StatsD servers do not all parse exponents (1e+07).
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0")


class _Line:
    """One series: the metric name and its tag suffix are formatted once, at bind time."""

    __slots__ = ("backend", "name", "seconds", "tags", "timer")

    def __init__(self, backend: StatsDBackend, name: str, tags: str, timer: bool, seconds: bool) -> None:
        self.backend, self.name, self.tags, self.timer, self.seconds = backend, name, tags, timer, seconds

    def inc(self, amount: float = 1.0) -> None:
        self.backend.emit(f"{self.name}:{_num(amount)}|c{self.tags}")

    def observe(self, value: float, exemplar: Exemplar | None = None) -> None:
        if self.seconds:
            self.backend.emit(f"{self.name}:{value * 1000.0:.3f}|ms{self.tags}")
        else:
            self.backend.emit(f"{self.name}:{_num(value)}|h{self.tags}")

    def set(self, value: float) -> None:
        # A leading sign would make StatsD treat the value as a delta.
        if value < 0:
            self.backend.emit(f"{self.name}:0|g{self.tags}")
            self.backend.emit(f"{self.name}:{_num(value)}|g{self.tags}")
        else:
            self.backend.emit(f"{self.name}:{_num(value)}|g{self.tags}")


class _GaugeLine(_Line):
    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        self.backend.emit(f"{self.name}:{'+' if amount >= 0 else ''}{_num(amount)}|g{self.tags}")


class StatsDBackend:
    def __init__(self, config: StatsDConfig) -> None:
        self.config = config
        self.prefix = _clean(config.prefix).rstrip(".")
        self.base_tags = tuple(f"{_clean(k)}:{_clean(str(v))}" for k, v in config.tags.items())
        self.specs: dict[str, MetricSpec] = {}
        self._pending: collections.deque[str] = collections.deque()
        self._scheduled = False
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sent_packets = 0
        self.dropped = 0

    # -- protocol ------------------------------------------------------------------------

    def declare(self, spec: MetricSpec) -> None:
        self.specs[spec.name] = spec

    def _metric_name(self, spec: MetricSpec) -> str:
        name = spec.name
        if spec.kind == "counter" and name.endswith("_total"):
            name = name[: -len("_total")]
        if spec.kind == "histogram" and spec.unit_seconds:
            name = name[: -len("_seconds")]  # sent as a timer in milliseconds
        return f"{self.prefix}.{name}" if self.prefix else name

    def bind(self, spec: MetricSpec, labels: tuple[str, ...]) -> Recorder:
        tags = self.base_tags + tuple(f"{k}:{_clean(v)}" for k, v in zip(spec.labels, labels, strict=True))
        suffix = "|#" + ",".join(tags) if tags else ""
        cls = _GaugeLine if spec.kind == "gauge" else _Line
        return cls(self, self._metric_name(spec), suffix, spec.kind == "histogram", spec.unit_seconds)

    # -- batching ------------------------------------------------------------------------

    def emit(self, line: str) -> None:
        pending = self._pending
        pending.append(line)
        if len(pending) > _MAX_PENDING:
            pending.popleft()
            self.dropped += 1
        if self._scheduled or self._sock is None:
            return
        self._scheduled = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # Another thread (Prometheus exposition, a sync caller): hand over to our loop.
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self.flush)
            else:
                self.flush()
            return
        loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        sock, pending, limit = self._sock, self._pending, self.config.max_packet_bytes
        if sock is None:
            return
        packet: list[str] = []
        size = 0
        while pending:
            line = pending.popleft()
            extra = len(line) + (1 if packet else 0)
            if packet and size + extra > limit:
                self._send(sock, "\n".join(packet))
                packet, size, extra = [], 0, len(line)
            packet.append(line)
            size += extra
        if packet:
            self._send(sock, "\n".join(packet))

    def _send(self, sock: socket.socket, data: str) -> None:
        try:
            sock.send(data.encode("utf-8"))
            self.sent_packets += 1
        except OSError:
            # BlockingIOError (buffer full) or ConnectionRefused (no agent): drop, never wait.
            self.dropped += 1

    # -- lifespan ------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Resolved once, off the loop: a DNS lookup per datagram would block.
        infos = await loop.getaddrinfo(self.config.host, self.config.port, type=socket.SOCK_DGRAM)
        family, _, proto, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM, proto)
        sock.setblocking(False)
        sock.connect(addr)
        self._sock, self._loop = sock, loop
        if self._pending:
            self._scheduled = True
            loop.call_soon(self.flush)

    async def stop(self) -> None:
        self.flush()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
