"""The Redis backend (redis-py 8, one blocking pool) and the fail-open / fail-closed policy when
Redis is down or does not answer. The shared Redis is never stopped: outages are a closed port or
a local server that accepts connections and never replies."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from limits import parse

from tests.asgi_harness import request
from tests.ratelimit.helpers import config, ok_app, redis_backend
from tframex_asgi.context import RequestContextMiddleware
from tframex_asgi.ratelimit import RateLimitMiddleware
from tframex_asgi.types import Receive, Scope, Send

STRATEGIES = ["moving-window", "fixed-window", "sliding-window-counter"]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
async def silent_redis_url() -> AsyncIterator[str]:
    """A server that accepts connections and reads, but never answers (a hung Redis)."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for w in writers:
        w.close()
    server.close()
    await server.wait_closed()


def with_state(limited: RateLimitMiddleware) -> tuple[Any, list[dict[str, Any]]]:
    states: list[dict[str, Any]] = []

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        await limited(scope, receive, send)
        states.append(dict(scope["tframex"]))

    return RequestContextMiddleware(outer), states


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_redis_backend_counts_under_the_key_prefix(redis_url: str, redis_prefix: str, strategy: str) -> None:
    import redis.asyncio as redis_asyncio

    limited = RateLimitMiddleware(
        ok_app, config(storage=redis_url, key_prefix=redis_prefix, default="3/minute", strategy=strategy)
    )
    try:
        statuses = [(await request(limited, "GET", "/a")).status for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        resp = await request(limited, "GET", "/a", client="10.0.0.2")
        assert resp.status == 200 and resp.headers["ratelimit"].startswith('"default";r=2;t=')
    finally:
        await limited.backend.close()
    client = redis_asyncio.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{redis_prefix}:*")]
    finally:
        await client.aclose()
    assert keys and all(k.decode().startswith(f"{redis_prefix}:") for k in keys)


async def test_blocking_pool_is_shared_and_waits(redis_url: str, redis_prefix: str) -> None:
    """More concurrent hits than pooled connections: they wait for a connection, none fails."""
    import redis.asyncio as redis_asyncio

    backend = redis_backend(storage=redis_url, key_prefix=redis_prefix, max_connections=2, timeout=10.0)
    try:
        pool = backend.storage.bridge.storage.connection_pool  # type: ignore[attr-defined]
        assert isinstance(pool, redis_asyncio.BlockingConnectionPool)
        answers = await asyncio.gather(*(backend.hit(parse("30/minute"), "pool") for _ in range(40)))
    finally:
        await backend.close()
    assert sum(answers) == 30 and backend.stats.unavailable_total == 0


@pytest.mark.parametrize("outage", ["closed_port", "silent"])
async def test_fail_open_lets_requests_through_and_records_it(outage: str, silent_redis_url: str) -> None:
    url = closed_port_url() if outage == "closed_port" else silent_redis_url
    limited = RateLimitMiddleware(ok_app, config(storage=url, fail_open=True, timeout=0.2, default="1/minute"))
    app, states = with_state(limited)
    try:
        responses = await asyncio.wait_for(asyncio.gather(*(request(app, "GET", "/a") for _ in range(3))), 30)
    finally:
        await limited.backend.close()
    assert [r.status for r in responses] == [200] * 3
    assert all("ratelimit" not in r.headers for r in responses)
    assert [s["audit_reason"] for s in states] == ["ratelimit_unavailable"] * 3
    assert limited.stats.failed_open_total == 3 and limited.stats.unavailable_total >= 3


@pytest.mark.parametrize("outage", ["closed_port", "silent"])
async def test_fail_closed_answers_503_never_500_or_hang(outage: str, silent_redis_url: str) -> None:
    url = closed_port_url() if outage == "closed_port" else silent_redis_url
    limited = RateLimitMiddleware(ok_app, config(storage=url, fail_open=False, timeout=0.2, cooldown=0.0))
    app, states = with_state(limited)
    try:
        responses = await asyncio.wait_for(asyncio.gather(*(request(app, "GET", "/a") for _ in range(3))), 30)
    finally:
        await limited.backend.close()
    for resp in responses:
        assert resp.status == 503
        assert resp.json()["error"]["code"] == "ratelimit_unavailable"
        assert int(resp.headers["retry-after"]) >= 1
    assert [s["audit_reason"] for s in states] == ["ratelimit_unavailable"] * 3
    assert limited.stats.failed_closed_total == 3


async def test_circuit_opens_after_a_failure_and_closes_on_recovery(redis_url: str, redis_prefix: str) -> None:
    now = [100.0]
    backend = redis_backend(storage=closed_port_url(), timeout=0.2, cooldown=5.0)
    backend.circuit.monotonic = lambda: now[0]
    item = parse("5/minute")
    from tframex_asgi.ratelimit import StorageUnavailable

    with pytest.raises(StorageUnavailable):
        await backend.hit(item, "x")
    # Within the cooldown the storage is not even tried.
    with pytest.raises(StorageUnavailable, match="circuit open"):
        await backend.hit(item, "x")
    await backend.close()
    # After the cooldown a working storage closes the circuit again.
    healthy = redis_backend(storage=redis_url, key_prefix=redis_prefix, cooldown=5.0)
    healthy.circuit.monotonic = lambda: now[0]
    healthy.circuit.open_until = 104.0
    with pytest.raises(StorageUnavailable):
        await healthy.hit(item, "y")
    now[0] = 105.0
    assert await healthy.hit(item, "y") is True
    assert healthy.circuit.open_until == 0.0 and not healthy.unavailable
    assert await healthy.ping() is True
    await healthy.close()


@pytest.mark.parametrize("token_strategy", STRATEGIES)
async def test_token_budget_on_redis(redis_url: str, redis_prefix: str, token_strategy: str) -> None:
    cfg = config(
        storage=redis_url,
        key_prefix=redis_prefix,
        tokens="100/hour",
        token_routes=("POST /run",),
        token_strategy=token_strategy,
    )
    limited = RateLimitMiddleware(ok_app, cfg)
    try:
        statuses = []
        for _ in range(3):
            statuses.append((await request(limited, "POST", "/run", headers={"x-test-tokens": "60"})).status)
    finally:
        await limited.backend.close()
    assert statuses == [200, 200, 429]
    assert limited.stats.tokens_charged_total == 120
