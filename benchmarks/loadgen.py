"""A small keep-alive HTTP/1.1 load generator, used only when wrk is not installed.

Raw asyncio streams rather than an HTTP client library, so the generator stays cheaper than
the server it measures. Prints one JSON object: rps, p50_ms, p99_ms, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time


async def _worker(port: int, request: bytes, stop: float, latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not head.startswith(b"HTTP/1.1 2"):
                errors[0] += 1
    finally:
        writer.close()


async def main(args: argparse.Namespace) -> dict[str, float]:
    lines = [f"GET {args.path} HTTP/1.1", f"Host: 127.0.0.1:{args.port}", *args.header, "", ""]
    request = "\r\n".join(lines).encode("latin-1")
    latencies: list[float] = []
    errors = [0]
    start = time.perf_counter()
    stop = start + args.seconds
    await asyncio.gather(*(_worker(args.port, request, stop, latencies, errors) for _ in range(args.connections)))
    elapsed = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
    return {"rps": len(latencies) / elapsed, "p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000, "errors": errors[0]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/bench")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--header", action="append", default=[])
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
