"""Per-request cost that should not grow with data or configuration, in process, small vs large:

- ``keys``: API key + RBAC stack on ``memory://`` storage, every request an uncached key lookup
  (``cache_ttl: 0``), with 10 vs 100,000 API keys stored (and how long writing them took);
- ``routes``: API key + RBAC + a route rate limit with 10 vs 1,000 ``GET /svcN/items/{id:int}``
  rules (RBAC and rate-limit routes), every request a new id (so the route memo never answers);
- ``audit``: API key + RBAC + audit level ``full`` with ``audit_logs`` already holding 1k vs 1M rows
  (seeded by one bulk ``INSERT ... SELECT``, not through the API) on SQLite and on PostgreSQL; the
  figure is the wall time of a block of requests *plus* the drain that writes their rows
  (``benchmarks.inproc``), per request, i.e. what the row costs wherever it is paid (PostgreSQL's
  own CPU included), next to the request path alone.

Each size is its own stack; rounds alternate between sizes and the medians are printed, and
written to ``benchmarks/results/scaling.json`` (``--json``; the figures of the modes not run are
kept) with the plot ``docs/img/bench-scaling.png`` (``--plot``).

    .venv/bin/python -m benchmarks.bench_scaling [keys] [routes] [audit] [-n 2000] [--rounds 5]
        [--keys 10,100000] [--routes 10,1000] [--audit-rows 1000,1000000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.apps import PATH, bare_starlette
from benchmarks.configs import BENCH_PERMISSION

ROOT = Path(__file__).resolve().parent.parent
RESULTS: dict[str, Any] = {}

Request = Callable[[], Awaitable[int]]


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 5000), "server": ("bench", 80), "state": {},
    }  # fmt: skip


async def _receive() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


def caller(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> Request:
    status = [0]

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]

    async def call() -> int:
        await app(_scope(path, headers), _receive, send)
        return status[0]

    return call


async def keys_stack(count: int) -> tuple[Request, Any, float]:
    """The stack with ``count`` API keys stored; returns (request, stack, seconds to write them)."""
    from tframex_asgi import build_stack
    from tframex_asgi.auth.store import get_identity_store

    stack = build_stack(
        bare_starlette(),
        enable_persistence=True,
        persistence_config={"connection_string": "memory://"},
        enable_security=True,
        security_config={
            "auth_providers": {"api_key": {"enabled": True, "cache_ttl": 0}},
            "rbac": {"routes": {f"GET {PATH}": BENCH_PERMISSION}},
            "audit": "off",
        },
    )
    await stack.startup()
    store = get_identity_store(stack.services)
    user = await store.create_user(f"bench-{uuid.uuid4().hex[:8]}")
    started = time.perf_counter()
    filler = [
        {"user_id": user["id"], "prefix": f"tfx_{i:012x}", "key_hash": "sha256:" + "0" * 64, "scopes": []}
        for i in range(count - 1)
    ]
    for i in range(0, len(filler), 1000):
        await stack.services.storage.write_many("api_keys", filler[i : i + 1000])
    _, key = await store.create_api_key(user["id"])
    wrote = time.perf_counter() - started
    return caller(stack.app, PATH, [(b"x-api-key", key.encode())]), stack, wrote


async def ok_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """200 for every path: the routes are the layers' concern here, not the app's."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def routes_stack(count: int) -> tuple[Request, Any]:
    """The stack with ``count`` RBAC and rate-limit route rules; each call hits the last rule
    with a fresh id."""
    from tframex_asgi import build_stack
    from tframex_asgi.auth.store import get_identity_store

    templates = [f"/svc{i}/items/{{id:int}}" for i in range(count)]
    stack = build_stack(
        ok_app,
        enable_persistence=True,
        persistence_config={"connection_string": "memory://"},
        enable_security=True,
        security_config={
            "auth_providers": {"api_key": True},
            "rbac": {"routes": {f"GET {t}": BENCH_PERMISSION for t in templates}},
            "rate_limiting": {
                "enabled": True,
                "storage": "memory://",
                "strategy": "fixed-window",
                "default": "1000000000/minute",
                "routes": {f"GET {t}": "1000000000/minute" for t in templates},
            },
            "audit": "off",
        },
    )
    await stack.startup()
    store = get_identity_store(stack.services)
    user = await store.create_user(f"bench-{uuid.uuid4().hex[:8]}")
    _, key = await store.create_api_key(user["id"])
    headers = [(b"x-api-key", key.encode())]
    counter = iter(range(10**12))
    status = [0]

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]

    async def call() -> int:
        path = f"/svc{count - 1}/items/{next(counter)}"
        await stack.app(_scope(path, headers), _receive, send)
        return status[0]

    return call, stack


async def bench_routes(sizes: list[int], n: int, rounds: int) -> None:
    built: dict[int, Request] = {}
    stacks = []
    for size in sizes:
        call, stack = await routes_stack(size)
        built[size] = call
        stacks.append(stack)
    await compare("routes", built, n, rounds)
    for stack in stacks:
        await stack.shutdown()


async def per_request(call: Request, n: int) -> float:
    assert await call() == 200, "the benchmark request must succeed"
    start = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - start) / n * 1e6


async def compare(label: str, built: dict[int, Request], n: int, rounds: int) -> None:
    times: dict[int, list[float]] = {size: [] for size in built}
    for _ in range(rounds):
        for size, call in built.items():
            times[size].append(await per_request(call, n))
    medians = {size: statistics.median(t) for size, t in times.items()}
    report(label, medians)


def report(label: str, medians: dict[int, float], extra: dict[str, Any] | None = None) -> None:
    small, large = min(medians), max(medians)
    for size, value in medians.items():
        print(f"{label} {size:>9,}: {value:7.1f} µs/request")
    print(f"{label}: {large:,} vs {small:,}: {medians[large] - medians[small]:+.1f} µs/request", flush=True)
    RESULTS[label] = {"us": {str(k): v for k, v in medians.items()}, **(extra or {})}


async def bench_keys(sizes: list[int], n: int, rounds: int) -> None:
    built: dict[int, Request] = {}
    stacks = []
    for size in sizes:
        call, stack, wrote = await keys_stack(size)
        print(f"keys {size:>9,}: stored in {wrote:.2f} s")
        built[size] = call
        stacks.append(stack)
    await compare("keys", built, n, rounds)
    for stack in stacks:
        await stack.shutdown()


async def main() -> None:
    parser = argparse.ArgumentParser()
    modes = ["keys", "routes", "audit"]
    parser.add_argument("what", nargs="*", default=modes, choices=modes)
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keys", default="10,100000")
    parser.add_argument("--routes", default="10,1000")
    parser.add_argument("--audit-rows", default="1000,1000000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "scaling.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "bench-scaling.png")
    args = parser.parse_args()
    if "keys" in args.what:
        await bench_keys([int(s) for s in args.keys.split(",")], args.n, args.rounds)
    if "routes" in args.what:
        await bench_routes([int(s) for s in args.routes.split(",")], args.n, args.rounds)
    if "audit" in args.what:
        from benchmarks.scaling_audit import bench_audit

        sizes = [int(s) for s in args.audit_rows.split(",")]
        for backend in args.backends.split(","):
            medians, extra = await bench_audit(backend.strip(), sizes, args.n, args.rounds)
            report(f"audit-{backend.strip()}", medians, extra)
            print(f"audit-{backend.strip()} request path: {extra['request_path_us']}")
    saved = json.loads(args.json.read_text()) if args.json.exists() else {}
    saved.update(RESULTS)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n")
    from benchmarks.plots import plot_scaling

    plot_scaling(saved, args.plot)
    print(f"wrote {args.json} and {args.plot}")


if __name__ == "__main__":
    asyncio.run(main())
