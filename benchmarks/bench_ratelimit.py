"""Per-request cost of RateLimitMiddleware, in process: memory vs Redis, each strategy, with and
without success headers. Prints µs/request over a no-op app.

    .venv/bin/python -m benchmarks.bench_ratelimit [--redis redis://127.0.0.1:6379/0] [-n 2000] [--no-hiredis]

``--no-hiredis`` hides hiredis (the ``[redis]`` extra installs it), so redis-py parses replies in
pure Python: run it with and without to see what hiredis saves.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from typing import Any

from tframex_asgi.config.ratelimit import RateLimitConfig
from tframex_asgi.ratelimit import RateLimitMiddleware
from tframex_asgi.types import Receive, Scope, Send

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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default=None)
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--no-hiredis", action="store_true")
    args = parser.parse_args()
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
                    await app.backend.storage.reset() if storage != "memory://" else None
                    await app.backend.close()
                name = f"{storage.split(':')[0]:7} {strategy:23} headers={headers!s:5}"
                print(f"{name} +{wall - base[0]:7.1f} µs/request (CPU +{cpu - base[1]:6.1f} µs)")


if __name__ == "__main__":
    asyncio.run(main())
