"""Per-request cost of RateLimitMiddleware, in process: memory vs Redis, each strategy, with and
without success headers. Prints µs/request over a no-op app.

    .venv/bin/python -m benchmarks.bench_ratelimit [--redis redis://127.0.0.1:6379/0] [-n 2000] [--no-hiredis]
    .venv/bin/python -m benchmarks.bench_ratelimit --deadlines [--redis redis://127.0.0.1:6379/0]
    .venv/bin/python -m benchmarks.bench_ratelimit --redis redis://127.0.0.1:6379/0 --lease 100

``--no-hiredis`` hides hiredis (the ``[redis]`` extra installs it), so redis-py parses replies in
pure Python: run it with and without to see what hiredis saves.

``--deadlines`` asks whether :class:`~tframex_asgi.ratelimit.deadlines.Deadlines` (one timer for
every in-flight storage call) pays against ``asyncio.timeout`` per call: first the bound alone
around an await that returns at once, then (with ``--redis``) whole requests through the
middleware on Redis, with 1 and 64 requests in flight, the two bounds alternated run by run.

``--lease N`` compares the fixed window on Redis exact (one batched script per request) with lease
mode (``lease: N``, docs/rate-limiting.md), CPU µs per request with 1 and 32 requests in flight,
the two modes alternated run by run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from tframex_asgi.config.ratelimit import RateLimitConfig
from tframex_asgi.ratelimit import RateLimitMiddleware
from tframex_asgi.ratelimit.redis_backend import RedisBackend
from tframex_asgi.types import Receive, Scope, Send

# A storage-call bound: ``await bound(factory, seconds)`` is ``await factory()`` or TimeoutError.
Bound = Callable[[Callable[[], Awaitable[None]], float], Awaitable[None]]

SCOPE = {
    "type": "http",
    "method": "GET",
    "path": "/agents",
    "raw_path": b"/agents",
    "headers": [],
    "client": ("127.0.0.1", 5000),
    "query_string": b"",
}


async def noop(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _send(message: Any) -> None:
    return None


async def _receive() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


async def per_request(app: Any, n: int) -> tuple[float, float]:
    """(wall µs, process CPU µs) per request: with Redis, wall time includes waiting for the
    server (and for whatever else shares the machine); CPU time is what limits req/s."""
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        scope = dict(SCOPE, client=(f"10.0.{i % 200}.1", 5000))  # 200 clients, none limited
        await app(scope, _receive, _send)
    return (time.perf_counter() - start) / n * 1e6, (time.process_time() - cpu) / n * 1e6


def _median(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


async def _nothing() -> None:
    return None


async def bound_alone(bound: Bound | None, n: int, concurrency: int) -> float:
    """CPU µs per call of ``bound(_nothing, 2.0)`` (``None``: a bare ``await``), with
    ``concurrency`` tasks calling at once."""

    async def one_task() -> None:
        if bound is None:
            for _ in range(n // concurrency):
                await _nothing()
        else:
            for _ in range(n // concurrency):
                await bound(_nothing, 2.0)

    cpu = time.process_time()
    await asyncio.gather(*(one_task() for _ in range(concurrency)))
    return (time.process_time() - cpu) / n * 1e6


async def in_flight(app: Any, n: int, concurrency: int) -> float:
    """CPU µs per request with ``concurrency`` requests in flight (each task its own clients)."""

    async def one_task(t: int) -> None:
        for i in range(n // concurrency):
            await app(dict(SCOPE, client=(f"10.{t}.{i % 50}.1", 5000)), _receive, _send)

    cpu = time.process_time()
    await asyncio.gather(*(one_task(t) for t in range(concurrency)))
    return (time.process_time() - cpu) / n * 1e6


async def deadlines(redis: str | None, n: int) -> None:
    from tframex_asgi.ratelimit.deadlines import Deadlines, stdlib_timeout

    print("the bound alone, CPU µs per call (median of 5):")
    for concurrency in (1, 64):
        bare = statistics.median([await bound_alone(None, n * 10, concurrency) for _ in range(5)])
        for name, bound in (("asyncio.timeout", stdlib_timeout), ("Deadlines.run", Deadlines().run)):
            cost = statistics.median([await bound_alone(bound, n * 10, concurrency) for _ in range(5)])
            print(f"  {concurrency:2} in flight  {name:16} +{cost - bare:5.2f} µs")
    if redis is None:
        print("(--redis URL to compare whole requests on Redis)")
        return
    print("requests through RateLimitMiddleware on Redis, CPU µs per request (median of 7):")
    for strategy in ("moving-window", "sliding-window-counter"):
        cfg = RateLimitConfig(
            enabled=True,
            storage=redis,
            strategy=strategy,
            default="1000000/hour",
            key_prefix=f"bench-{uuid.uuid4().hex[:8]}",
            timeout=2.0,
        )
        app = RateLimitMiddleware(noop, cfg)
        backend = app.backend
        assert isinstance(backend, RedisBackend)
        ours = backend._deadlines.run
        try:
            for concurrency in (1, 64):
                await in_flight(app, n, concurrency)  # warm the pool and the scripts
                samples: dict[str, list[float]] = {"asyncio.timeout": [], "Deadlines.run": []}
                for _ in range(7):
                    for name, bound in (("asyncio.timeout", stdlib_timeout), ("Deadlines.run", ours)):
                        backend._deadlines.run = bound  # type: ignore[method-assign]
                        samples[name].append(await in_flight(app, n, concurrency))
                std, dl = (statistics.median(samples[k]) for k in ("asyncio.timeout", "Deadlines.run"))
                print(
                    f"  {strategy:23} {concurrency:2} in flight  asyncio.timeout {std:6.1f}  "
                    f"Deadlines.run {dl:6.1f}  saved {std - dl:5.1f} µs ({(std - dl) / std:+.1%})"
                )
        finally:
            await backend.storage.reset()
            await backend.close()


async def lease_compare(redis: str, n: int, lease: int) -> None:
    print(f"fixed window on Redis through RateLimitMiddleware, CPU µs per request (median of 5), lease {lease}:")
    apps = {}
    for mode in (0, lease):
        cfg = RateLimitConfig(
            enabled=True,
            storage=redis,
            strategy="fixed-window",
            default="1000000/hour",
            lease=mode,
            key_prefix=f"bench-{uuid.uuid4().hex[:8]}",
            timeout=2.0,
        )
        apps["exact" if mode == 0 else f"lease {lease}"] = RateLimitMiddleware(noop, cfg)
    base = statistics.median([await in_flight(noop, n, 1) for _ in range(5)])
    try:
        for concurrency in (1, 32):
            samples: dict[str, list[float]] = {name: [] for name in apps}
            for app in apps.values():
                await in_flight(app, n, concurrency)  # warm the pool, the scripts and the leases
            for _ in range(5):
                for name, app in apps.items():
                    samples[name].append(await in_flight(app, n, concurrency))
            cells = "  ".join(f"{name} +{statistics.median(v) - base:6.1f}" for name, v in samples.items())
            print(f"  {concurrency:2} in flight  {cells}")
    finally:
        for app in apps.values():
            backend = app.backend
            inner = getattr(backend, "inner", backend)
            assert isinstance(inner, RedisBackend)
            await inner.storage.reset()
            await backend.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default=None)
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--no-hiredis", action="store_true")
    parser.add_argument("--deadlines", action="store_true", help="Deadlines vs asyncio.timeout (see the docstring)")
    parser.add_argument("--lease", type=int, default=0, help="exact vs lease mode of this size (needs --redis)")
    args = parser.parse_args()
    if args.lease:
        if not args.redis:
            parser.error("--lease needs --redis")
        await lease_compare(args.redis, args.n, args.lease)
        return
    if args.deadlines:
        await deadlines(args.redis, args.n)
        return
    if args.no_hiredis:
        sys.modules["hiredis"] = None  # type: ignore[assignment]  # redis-py then falls back to Python
    if args.redis:
        from redis.utils import HIREDIS_AVAILABLE

        print(f"redis-py reply parser: {'hiredis' if HIREDIS_AVAILABLE else 'pure Python'}")
    base = _median([await per_request(noop, args.n) for _ in range(3)])
    storages = ["memory://"] + ([args.redis] if args.redis else [])
    for storage in storages:
        for strategy in ("moving-window", "fixed-window", "sliding-window-counter"):
            for headers in (True, False):
                cfg = RateLimitConfig(
                    enabled=True,
                    storage=storage,
                    strategy=strategy,
                    default="1000000/hour",
                    headers_on_success=headers,
                    key_prefix=f"bench-{uuid.uuid4().hex[:8]}",
                    timeout=2.0,
                )
                app = RateLimitMiddleware(noop, cfg)
                try:
                    wall, cpu = _median([await per_request(app, args.n) for _ in range(3)])
                finally:
                    if isinstance(app.backend, RedisBackend):
                        await app.backend.storage.reset()
                    await app.backend.close()
                name = f"{storage.split(':')[0]:7} {strategy:23} headers={headers!s:5}"
                print(f"{name} +{wall - base[0]:7.1f} µs/request (CPU +{cpu - base[1]:6.1f} µs)")


if __name__ == "__main__":
    asyncio.run(main())
