"""OpenTelemetry: spans nest (server > agent > tool; server > flow > step > agent), the server
span is named after the route template, exemplars carry the trace id, and nothing of
OpenTelemetry is imported when it is off."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.metrics.helpers import endpoint, metrics_config
from tests.metrics.helpers import endpoint as endpoint_app
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.services import Services
from tframex_asgi.stack import EnterpriseStack


@pytest.fixture
def traced():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel = {"enabled": True, "metrics": False}  # traces only: OTLP metrics are tests/metrics/test_otel_metrics.py
    config = EnterpriseConfig.from_mapping(metrics_config(prometheus=True, opentelemetry=otel))
    services = Services(config, tracer_provider=provider)
    stack = EnterpriseStack(endpoint(), services=services)
    return stack, exporter


def by_name(exporter: InMemorySpanExporter) -> dict:
    return {s.name: s for s in exporter.get_finished_spans()}


def parent_of(span) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_agent_run_and_tool_call_nest_under_the_server_span(traced) -> None:
    stack, exporter = traced
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        assert (await c.post("/agents/calculator/run", json={"input": "add 2 and 40"})).status_code == 200
    spans = by_name(exporter)
    server, agent, tool = spans["POST /agents/{name}/run"], spans["agent calculator"], spans["tool add"]
    assert server.parent is None and server.attributes["http.route"] == "/agents/{name}/run"
    assert parent_of(agent) == server.context.span_id
    assert parent_of(tool) == agent.context.span_id
    assert {s.context.trace_id for s in (server, agent, tool)} == {server.context.trace_id}
    assert tool.attributes["tframex.tool_type"] == "native"
    assert not any("/agents/calculator" in s.name for s in exporter.get_finished_spans())


async def test_flow_step_agent_nesting_and_errors(traced) -> None:
    stack, exporter = traced
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        assert (await c.post("/flows/echo_then_shout/run", json={"input": "hi"})).status_code == 200
        spans = by_name(exporter)
        server, flow = spans["POST /flows/{name}/run"], spans["flow echo_then_shout"]
        assert parent_of(flow) == server.context.span_id
        for step_name in ("assistant", "shouter"):
            step, agent = spans[f"step {step_name}"], spans[f"agent {step_name}"]
            assert parent_of(step) == flow.context.span_id
            assert parent_of(agent) == step.context.span_id
        exporter.clear()
        assert (await c.post("/agents/assistant/run", json={"input": "BOOM"})).status_code == 502
    failed = by_name(exporter)["agent assistant"]
    assert failed.status.status_code.name == "ERROR"


async def test_duration_exemplar_links_to_the_trace(traced) -> None:
    stack, exporter = traced
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        await c.get("/healthz")
        trace_id = format(by_name(exporter)["GET /healthz"].context.trace_id, "032x")
        om = await c.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    buckets = "tframex_http_request_duration_seconds_bucket"
    lines = [x for x in om.text.splitlines() if x.startswith(buckets) and "/healthz" in x]
    assert any(f'# {{trace_id="{trace_id}"}}' in line for line in lines)


def test_opentelemetry_not_imported_when_off() -> None:
    code = textwrap.dedent(
        """
        import asyncio, sys
        from tests.asgi_harness import request
        from tests.metrics.helpers import make_stack

        async def main():
            stack = make_stack(prometheus=True, statsd={"enabled": True, "host": "127.0.0.1", "port": 9})
            async with stack:
                assert (await request(stack, "POST", "/agents/assistant/run", {"input": "x"})).status == 200
                assert (await request(stack, "GET", "/metrics")).status == 200

        asyncio.run(main())
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_otlp_exporter_sends_to_the_configured_endpoint() -> None:
    import asyncio
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[tuple[str, str | None, str | None]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], self.headers["X-Tenant"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        otel = {"enabled": True, "endpoint": endpoint, "headers": {"X-Tenant": "t1"}, "service_name": "svc"}
        stack = EnterpriseStack(endpoint_app(), metrics_config(prometheus=True, opentelemetry=otel))

        async def run() -> None:
            async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
                assert (await c.get("/healthz")).status_code == 200

        asyncio.run(run())  # shutdown flushes the batch processor
    finally:
        server.shutdown()
        server.server_close()
    assert ("/v1/traces", "application/x-protobuf", "t1") in received
    assert ("/v1/metrics", "application/x-protobuf", "t1") in received  # both signals, same collector
