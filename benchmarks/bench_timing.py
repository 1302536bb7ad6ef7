"""What ``server.server_timing: true`` adds per request, in process: the full stack with and
without it, interleaved (same build otherwise). Prints µs/request and the header it sends.

    .venv/bin/python -m benchmarks.bench_timing [-n 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from benchmarks.configs import BenchContext, by_name
from benchmarks.inproc import drain

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/bench",
    "raw_path": b"/bench",
    "query_string": b"",
    "root_path": "",
    "client": ("127.0.0.1", 5000),
    "server": ("bench", 80),
}


async def _receive() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


async def per_request(app: Any, headers: list[tuple[bytes, bytes]], n: int, seen: list[Any]) -> float:
    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            seen[:] = [message["status"], dict(message["headers"]).get(b"server-timing")]

    start = time.perf_counter()
    for _ in range(n):
        await app({**SCOPE, "headers": headers, "state": {}}, _receive, send)
    return (time.perf_counter() - start) / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        ctx = BenchContext(workdir=tmp, redis_url=None, pg_dsn=None)
        off = await by_name("ours:full-apikey").build(ctx)
        on = await by_name("ours:full-apikey-timing").build(ctx)
        diffs, seen = [], []
        for _ in range(args.rounds):
            # Each block's audit rows are written before the next block is timed (as in inproc).
            a = await per_request(off.app, off.headers, args.n, seen)
            await drain(off)
            b = await per_request(on.app, on.headers, args.n, seen)
            await drain(on)
            diffs.append(b - a)
            print(f"  off {a:7.1f} µs  on {b:7.1f} µs  diff {b - a:+6.1f}")
        print(f"server_timing on: {statistics.median(diffs):+.1f} µs/request (median of {args.rounds} rounds)")
        print(f"header: status {seen[0]} server-timing: {seen[1].decode()}")
        for built in (off, on):
            if built.close is not None:
                await built.close()


if __name__ == "__main__":
    asyncio.run(main())
