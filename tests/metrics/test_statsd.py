"""StatsD: real UDP datagrams on a loopback socket, batched per event-loop tick."""

from __future__ import annotations

import re
import socket

import pytest

from tests.asgi_harness import request
from tests.metrics.helpers import make_stack
from tframex_asgi.config.metrics import StatsDConfig
from tframex_asgi.metrics.spec import CATALOGUE
from tframex_asgi.metrics.statsd import StatsDBackend


@pytest.fixture
def udp():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def drain(sock: socket.socket) -> list[bytes]:
    packets = []
    sock.settimeout(0.2)  # only to stop reading once the sender is done, never asserted on
    try:
        while True:
            packets.append(sock.recv(65536))
    except TimeoutError:
        pass
    return packets


async def test_http_and_agent_metrics_as_datagrams(udp: socket.socket) -> None:
    port = udp.getsockname()[1]
    stack = make_stack(
        statsd={"enabled": True, "host": "127.0.0.1", "port": port, "prefix": "app", "tags": {"env": "test"}}
    )
    async with stack:
        assert (await request(stack, "POST", "/agents/calculator/run", {"input": "add 2 and 40"})).status == 200
        assert (await request(stack, "GET", "/nope/1")).status == 404
    lines = [line for p in drain(udp) for line in p.decode().split("\n")]
    assert "app.http_requests:1|c|#env:test,method:POST,route:/agents/{name}/run,status_class:2xx" in lines
    assert "app.http_requests:1|c|#env:test,method:GET,route:<unmatched>,status_class:4xx" in lines
    assert any(re.fullmatch(r"app\.http_request_duration:\d+\.\d{3}\|ms\|#env:test,method:POST,.*", x) for x in lines)
    assert "app.http_requests_in_flight:0|g|#env:test" in lines  # observed: pushed, not sent per request
    assert "app.agent_executions:1|c|#env:test,agent:calculator,status:success" in lines
    assert "app.tool_calls:1|c|#env:test,tool:add,type:native,status:success" in lines
    assert any(x.startswith("app.llm_tokens:") for x in lines)
    # Observed metrics are pushed (at startup, every export interval and at shutdown).
    assert any(re.fullmatch(r"app\.process_resident_memory_bytes:\d+\|g\|#env:test", x) for x in lines)


async def test_one_tick_is_batched_into_bounded_packets(udp: socket.socket) -> None:
    port = udp.getsockname()[1]
    backend = StatsDBackend(StatsDConfig(enabled=True, host="127.0.0.1", port=port, max_packet_bytes=512))
    spec = CATALOGUE["auth_failures_total"]
    backend.declare(spec)
    await backend.start()
    recorder = backend.bind(spec, ("invalid|token\n#x",))  # separators in values are neutralised
    for _ in range(200):
        recorder.inc()
    assert backend.sent_packets == 0  # nothing sent until the loop turns
    await backend.stop()
    packets = drain(udp)
    lines = [line for p in packets for line in p.decode().split("\n")]
    assert lines == ["tframex.auth_failures:1|c|#reason:invalid_token__x"] * 200
    assert all(len(p) <= 512 for p in packets) and 1 < len(packets) < 200


async def test_unreachable_agent_never_raises() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on that port now: ICMP refusals must be swallowed.
    stack = make_stack(statsd={"enabled": True, "host": "127.0.0.1", "port": port})
    async with stack:
        for _ in range(5):
            assert (await request(stack, "GET", "/healthz")).status == 200
