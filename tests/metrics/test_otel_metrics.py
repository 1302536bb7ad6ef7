"""OpenTelemetry metrics over OTLP/HTTP, received by a collector the test runs on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from tests.metrics.helpers import endpoint
from tframex_asgi import build_stack
from tframex_asgi.errors import ConfigError
from tframex_asgi.metrics.otel_metrics import metrics_url


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """A tiny OTLP/HTTP receiver: every POST's path and protobuf body."""
    received: list[tuple[str, bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def _points(bodies: list[bytes]) -> dict[str, list[Any]]:
    """Metric name -> its data points, across every export received."""
    out: dict[str, list[Any]] = {}
    for body in bodies:
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    out.setdefault(m.name, []).extend(getattr(m, kind).data_points)
    return out


def _attrs(point: Any) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in point.attributes}


async def test_opentelemetry_alone_exports_metrics_over_otlp(collector: tuple[str, list[tuple[str, bytes]]]) -> None:
    url, received = collector
    stack = build_stack(
        endpoint(),
        enable_security=False,
        enable_metrics=True,
        metrics_config={"backends": {"opentelemetry": {"enabled": True, "endpoint": url}}, "export_interval": 60},
    )
    names = [name for name, _ in stack.services.metrics.backends]
    assert names == ["opentelemetry"]  # no Prometheus added behind the user's back
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        assert (await c.get("/metrics")).status_code == 404
        assert (await c.post("/agents/calculator/run", json={"input": "add 2 and 40"})).status_code == 200
    # Shutdown flushed both signals to the collector.
    paths = {path for path, _ in received}
    assert paths == {"/v1/metrics", "/v1/traces"}
    points = _points([body for path, body in received if path == "/v1/metrics"])
    runs = [p for p in points["agent_executions_total"] if _attrs(p) == {"agent": "calculator", "status": "success"}]
    assert [p.as_double for p in runs] == [1.0]
    durations = [p for p in points["agent_duration_seconds"] if _attrs(p) == {"agent": "calculator"}]
    assert durations[0].count == 1 and list(durations[0].explicit_bounds)[:2] == [0.05, 0.1]
    tools = points["tool_calls_total"]
    assert [(_attrs(p), p.as_double) for p in tools] == [({"tool": "add", "type": "native", "status": "success"}, 1.0)]
    http = [p for p in points["http_requests_total"] if _attrs(p).get("route") == "/agents/{name}/run"]
    assert http and http[0].as_double == 1.0
    assert "http_requests_in_flight" in points  # a gauge, read through an observable gauge


def test_the_seeds_jaeger_thrift_url_is_refused_with_the_fix() -> None:
    seed = {"backends": {"opentelemetry": {"enabled": True, "endpoint": "http://jaeger:14268/api/traces"}}}
    with pytest.raises(ConfigError, match=r"opentelemetry\.endpoint.*Thrift.*http://jaeger:4318"):
        build_stack(endpoint(), enable_security=False, enable_metrics=True, metrics_config=seed)


def test_metrics_url_follows_the_traces_url() -> None:
    assert metrics_url("http://c:4318") == "http://c:4318/v1/metrics"
    assert metrics_url("http://c:4318/v1/traces") == "http://c:4318/v1/metrics"
    assert metrics_url("https://c/otlp/v1/metrics") == "https://c/otlp/v1/metrics"


def test_config_check_explains_the_seeds_jaeger_url(tmp_path: Any, capsys: Any) -> None:
    from tframex_asgi.cli import main

    seed = tmp_path / "seed.yaml"
    seed.write_text(
        "enterprise:\n  metrics:\n    enabled: true\n    backends:\n      opentelemetry:\n"
        '        enabled: true\n        endpoint: "http://jaeger:14268/api/traces"\n'
    )
    assert main(["config", "check", str(seed)]) == 2
    err = capsys.readouterr().err
    assert "enterprise.metrics.backends.opentelemetry.endpoint" in err and "http://jaeger:4318" in err
