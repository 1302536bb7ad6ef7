"""Per-request cost of RateLimitMiddleware, in process: memory vs Redis, each strategy, with and
without success headers. Prints µs/request over a no-op app.

    .venv/bin/python -m benchmarks.bench_ratelimit [--redis redis://127.0.0.1:6379/0] [-n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
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


async def per_request(app: Any, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        scope = dict(SCOPE, client=(f"10.0.{i % 200}.1", 5000))  # 200 clients, none limited
        await app(scope, _receive, _send)
    return (time.perf_counter() - start) / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default=None)
    parser.add_argument("-n", type=int, default=2000)
    args = parser.parse_args()
    base = statistics.median([await per_request(noop, args.n) for _ in range(3)])
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
                    cost = statistics.median([await per_request(app, args.n) for _ in range(3)]) - base
                finally:
                    await app.backend.storage.reset() if storage != "memory://" else None
                    await app.backend.close()
                print(f"{storage.split(':')[0]:7} {strategy:23} headers={headers!s:5} +{cost:8.1f} µs/request")


if __name__ == "__main__":
    asyncio.run(main())
