"""Micro-benchmark of the metrics layer's per-request cost.

    .venv/bin/python -m benchmarks.bench_metrics_layer [requests]

Drives a bare ASGI app directly (no server, no HTTP parsing) with and without the metrics
layer and prints the difference per request, for the Prometheus backend, Prometheus+StatsD,
and Prometheus with OpenTelemetry tracing.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from typing import Any

from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.layers import build_layer
from tframex_asgi.services import Services


async def app(scope: Any, receive: Any, send: Any) -> None:
    scope["tframex"]["route"] = "/agents/{name}/run"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def drive(asgi: Any, n: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        pass

    base = {"type": "http", "method": "POST", "path": "/agents/x/run", "headers": []}
    start = time.perf_counter()
    for _ in range(n):
        scope = dict(base)
        scope["tframex"] = {}
        await asgi(scope, receive, send)
    return (time.perf_counter() - start) / n * 1e6


async def measure(backends: dict[str, Any], n: int) -> float:
    provider = None
    if "opentelemetry" in backends:
        from opentelemetry.sdk.trace import TracerProvider

        provider = TracerProvider()  # a recording SDK provider with no exporter: the instrumentation's own cost
    config = EnterpriseConfig.from_mapping({"metrics": {"enabled": True, "backends": backends}})
    services = Services(config, tracer_provider=provider)
    layer = build_layer("metrics", app, services)
    assert layer is not None
    await services.startup()
    try:
        await drive(layer, 2000)  # bind the series, warm caches
        runs = []
        for _ in range(5):
            runs.append((await drive(layer, n)) - (await drive(app, n)))
        best = min(runs)
    finally:
        await services.shutdown()
    return best


async def main(n: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        statsd = {"enabled": True, "host": "127.0.0.1", "port": sink.getsockname()[1]}
        cases = {
            "prometheus": {"prometheus": True},
            "prometheus+statsd": {"prometheus": True, "statsd": statsd},
            "prometheus+opentelemetry": {"prometheus": True, "opentelemetry": True},
        }
        for name, backends in cases.items():
            print(f"{name:26s} +{await measure(backends, n):6.2f} µs/request")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
