"""In-process driver: call each ASGI app directly (no network, no HTTP client), interleaved.

Every round runs ``n`` requests through every configuration, in an order that rotates and
flips from round to round; a configuration's overhead is the median over rounds of
(its µs/request - its baseline's µs/request in the same round), so the machine's drift
between rounds cancels out. Scopes are prebuilt outside the timed loop.

Two figures per block. *Request path*: wall time of the ``n`` calls, what a client waits for.
*All-in CPU*: process CPU time over the block plus the drain that follows it (audit rows built in
loop callbacks, then the write queue flushed to the database), divided by ``n``: everything the
configuration made the process do for those requests, charged to it and not to the next block.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.apps import PATH
from benchmarks.configs import BenchConfig, BenchContext, Built, Unavailable

__all__ = ["InprocResult", "base_scope", "check_app", "drain", "run_inprocess"]

_REQUEST = {"type": "http.request", "body": b"", "more_body": False}
# Give background tasks (audit writer, metric exporters) the loop this often: their cost is
# then charged to the configuration that created them, as a server would see it.
YIELD_EVERY = 32
MIN_REQUESTS = 100
# A drain that takes longer than this is a stuck writer: fail loudly rather than hang the run.
DRAIN_TIMEOUT = 60.0


def base_scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"tframex-bench"), (b"accept", b"*/*"), *headers],
        "client": ("127.0.0.1", 50123),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


def _scopes(built: Built, n: int) -> list[dict[str, Any]]:
    template = base_scope(built.headers)
    out = []
    for _ in range(n):
        scope = dict(template)
        scope["headers"] = list(template["headers"])
        scope["state"] = {}
        if built.scope_extras is not None:
            scope.update(built.scope_extras())
        out.append(scope)
    return out


async def _receive() -> dict[str, Any]:
    return dict(_REQUEST)


async def _discard(message: dict[str, Any]) -> None:
    return None


async def check_app(built: Built, count: int = 3) -> None:
    """Raise unless ``count`` requests answer 200 with a body."""
    for scope in _scopes(built, count):
        seen: dict[str, Any] = {"status": None, "body": b""}

        async def send(message: dict[str, Any], seen: dict[str, Any] = seen) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body":
                seen["body"] += message.get("body", b"")

        await built.app(scope, _receive, send)
        if seen["status"] != 200:
            raise Unavailable(f"answered {seen['status']} instead of 200: {seen['body'][:200]!r}")


async def _timed(app: Any, scopes: list[dict[str, Any]]) -> tuple[float, float]:
    """(wall µs, process CPU µs) per request over ``scopes``.

    CPU time counts every thread of this process (the audit writer's included) but not the
    time other tenants of a shared machine hold the cores, so it is the steadier of the two;
    wall time also counts waiting on Redis/PostgreSQL.
    """
    receive, send, sleep = _receive, _discard, asyncio.sleep
    cpu0 = time.process_time_ns()
    start = time.perf_counter_ns()
    for i, scope in enumerate(scopes):
        await app(scope, receive, send)
        if i % YIELD_EVERY == 0:
            await sleep(0)
    wall = time.perf_counter_ns() - start
    cpu = time.process_time_ns() - cpu0
    return wall / 1000 / len(scopes), cpu / 1000 / len(scopes)


async def drain(built: Built) -> None:
    """Finish the background work ``built``'s requests left behind: the audit rows still to build
    (its ``flush`` builds them and then flushes the writer), then the write queue itself."""
    services = built.services
    audit = services.built("audit_logger") if services is not None else None
    if audit is not None:
        await asyncio.wait_for(audit.flush(), DRAIN_TIMEOUT)
    writer = services.built("writer") if services is not None else None
    if writer is not None:
        await asyncio.wait_for(writer.flush(), DRAIN_TIMEOUT)


async def _block(built: Built, scopes: list[dict[str, Any]]) -> tuple[float, float, float]:
    """(request-path wall µs, request-path CPU µs, all-in CPU µs) per request: the timed calls, then
    the drain of their background work, whose CPU time is added to the all-in figure only."""
    cpu0 = time.process_time_ns()
    wall, cpu = await _timed(built.app, scopes)
    await drain(built)
    allin = (time.process_time_ns() - cpu0) / 1000 / len(scopes)
    return wall, cpu, allin


@dataclass
class InprocResult:
    name: str
    base: str
    per_round: list[float] = field(default_factory=list)  # wall µs/request
    overhead: list[float] = field(default_factory=list)  # wall µs/request minus the base's, same round
    cpu_per_round: list[float] = field(default_factory=list)  # process CPU µs/request
    cpu_overhead: list[float] = field(default_factory=list)
    allin_per_round: list[float] = field(default_factory=list)  # CPU µs/request, block + drain
    allin_overhead: list[float] = field(default_factory=list)
    requests: int = 0  # per round

    @property
    def median(self) -> float:
        return statistics.median(self.per_round)

    @property
    def overhead_median(self) -> float:
        return statistics.median(self.overhead) if self.overhead else 0.0

    @property
    def overhead_iqr(self) -> tuple[float, float]:
        if len(self.overhead) < 2:
            return (self.overhead_median, self.overhead_median)
        q = statistics.quantiles(self.overhead, n=4, method="inclusive")
        return (q[0], q[2])

    def to_dict(self) -> dict[str, Any]:
        low, high = self.overhead_iqr
        cpu = statistics.median(self.cpu_per_round)
        cpu_over = statistics.median(self.cpu_overhead)
        allin = statistics.median(self.allin_per_round) if self.allin_per_round else None
        allin_over = statistics.median(self.allin_overhead) if self.allin_overhead else None
        return {
            "cpu_us": cpu,
            "cpu_overhead_us": cpu_over,
            "allin_cpu_us": allin,
            "allin_cpu_overhead_us": allin_over,
            "allin_cpu_per_round_us": self.allin_per_round,
            "name": self.name,
            "base": self.base,
            "median_us": self.median,
            "overhead_us": self.overhead_median,
            "overhead_q1_us": low,
            "overhead_q3_us": high,
            "requests_per_round": self.requests,
            "per_round_us": self.per_round,
            "cpu_per_round_us": self.cpu_per_round,
        }


async def build_all(
    configs: list[BenchConfig], ctx: BenchContext, log: Callable[[str], None]
) -> tuple[dict[str, Built], dict[str, str]]:
    built: dict[str, Built] = {}
    skipped: dict[str, str] = {}
    for config in configs:
        try:
            candidate = await config.build(ctx)
            await check_app(candidate)
        except Unavailable as exc:
            skipped[config.name] = str(exc)
            log(f"  skip {config.name}: {exc}")
            continue
        except Exception as exc:
            skipped[config.name] = f"failed: {type(exc).__name__}: {exc}"
            log(f"  skip {config.name}: failed: {type(exc).__name__}: {exc}")
            continue
        built[config.name] = candidate
        log(f"  ready {config.name} {candidate.layers or ''}")
    return built, skipped


async def run_inprocess(
    configs: list[BenchConfig],
    ctx: BenchContext,
    *,
    rounds: int,
    requests: int,
    block_ms: float = 100.0,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, InprocResult], dict[str, str]]:
    """``requests`` per configuration per round at most; fewer for a slow configuration, so that
    one block lasts about ``block_ms`` (and never fewer than MIN_REQUESTS)."""
    built, skipped = await build_all(configs, ctx, log)
    wanted = [c for c in configs if c.name in built]
    for config in wanted:
        if config.base not in built:
            skipped[config.name] = f"its baseline {config.base!r} is unavailable"
    wanted = [c for c in wanted if c.name not in skipped]
    results = {c.name: InprocResult(c.name, c.base) for c in wanted}
    counts: dict[str, int] = {}
    try:
        # Warm-up (imports, caches, first-use allocations), then size each configuration's block to
        # about the same duration: a configuration waiting on Redis/PostgreSQL gets fewer requests.
        for config in wanted:
            await _block(built[config.name], _scopes(built[config.name], min(requests, 200)))
        for config in wanted:
            wall, _, _ = await _block(built[config.name], _scopes(built[config.name], min(requests, 200)))
            counts[config.name] = max(MIN_REQUESTS, min(requests, int(block_ms * 1000 / max(wall, 0.1))))
        for name, count in counts.items():
            results[name].requests = count
        for r in range(rounds):
            order = wanted[r % len(wanted) :] + wanted[: r % len(wanted)]
            if r % 2:
                order.reverse()
            this_round: dict[str, tuple[float, float, float]] = {}
            for config in order:
                scopes = _scopes(built[config.name], counts[config.name])
                gc.collect()
                # Timed block, then its background work drained (audit rows built, write queue
                # flushed) before the next configuration starts: no spill-over between blocks.
                this_round[config.name] = await _block(built[config.name], scopes)
                await asyncio.sleep(0)
            for config in wanted:
                res = results[config.name]
                (wall, cpu, allin), (base_wall, base_cpu, base_allin) = this_round[config.name], this_round[config.base]
                res.per_round.append(wall)
                res.overhead.append(wall - base_wall)
                res.cpu_per_round.append(cpu)
                res.cpu_overhead.append(cpu - base_cpu)
                res.allin_per_round.append(allin)
                res.allin_overhead.append(allin - base_allin)
            shown = ", ".join(
                f"{n} {w:.1f} µs (all-in cpu {a:.1f})"
                for n, (w, _c, a) in sorted(this_round.items())
                if n in ("bare", "ours:full-apikey")
            )
            log(f"  in-process round {r + 1}/{rounds}: {shown}")
        # A configuration that started rejecting mid-run (a limit hit, a queue full) is not comparable.
        for config in wanted:
            try:
                await check_app(built[config.name], 1)
            except Unavailable as exc:
                skipped[config.name] = f"stopped answering 200 during the run: {exc}"
                results.pop(config.name, None)
    finally:
        for b in built.values():
            if b.close is not None:
                try:
                    await b.close()
                except Exception as exc:  # a failing shutdown must not lose the results
                    log(f"  close failed: {exc!r}")
    return results, skipped
