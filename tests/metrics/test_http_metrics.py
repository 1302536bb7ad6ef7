"""HTTP metrics: route templates (never raw paths), status classes, in flight, streaming to
the end, rejections by reason, tokens, bounded cardinality, and GET /metrics."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.asgi_harness import request
from tests.conftest import free_port
from tests.metrics.helpers import make_stack, series, value
from tframex_asgi.context import get_state


async def test_requests_by_route_template_and_status_class() -> None:
    stack = make_stack()
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        assert (await c.post("/agents/assistant/run", json={"input": "hi"})).status_code == 200
        assert (await c.post("/agents/shouter/run", json={"input": "hi"})).status_code == 200
        assert (await c.post("/agents/assistant/run", json={"input": "BOOM"})).status_code == 502
        assert (await c.post("/agents/nope/run", json={"input": "x"})).status_code == 404
        assert (await c.get("/no/such/path")).status_code == 404
        assert (await c.get("/healthz")).status_code == 200
    run = {"method": "POST", "route": "/agents/{name}/run"}
    assert value(stack, "http_requests_total", **run, status_class="2xx") == 2
    assert value(stack, "http_requests_total", **run, status_class="5xx") == 1
    assert value(stack, "http_requests_total", **run, status_class="4xx") == 1
    assert value(stack, "http_request_duration_seconds_count", **run, status_class="2xx") == 2
    assert value(stack, "http_requests_total", method="GET", route="<unmatched>", status_class="4xx") == 1
    assert value(stack, "http_requests_total", method="GET", route="/healthz", status_class="2xx") == 1
    assert value(stack, "http_requests_in_flight") == 0
    routes = {dict(labels)["route"] for labels in series(stack, "http_requests")}
    assert routes == {"/agents/{name}/run", "<unmatched>", "/healthz"}
    # Tokens reported by the (offline) LLM, read from state["usage"] after the response.
    assert value(stack, "llm_tokens_total", route="/agents/{name}/run", type="prompt") > 0
    assert value(stack, "llm_tokens_total", route="/agents/{name}/run", type="completion") > 0


async def test_ten_thousand_distinct_paths_add_no_series() -> None:
    stack = make_stack()
    async with stack:
        for i in range(20):
            await request(stack, "GET", f"/warmup/{i}")
        before = series(stack, "http_requests") | series(stack, "http_request_duration_seconds")
        for i in range(10_000):
            response = await request(stack, "GET", f"/items/{i}/x{i}")
            assert response.status == 404
        await request(stack, "BREW", "/coffee/1")
        await request(stack, "BREW", "/coffee/2")
        after = series(stack, "http_requests") | series(stack, "http_request_duration_seconds")
    new = after - before
    # Only the collapsed unknown method adds a series; no path ever became a label value.
    assert {dict(labels)["method"] for labels in new} == {"OTHER"} and len(new) == 1
    assert value(stack, "http_requests_total", method="GET", route="<unmatched>", status_class="4xx") == 10_020


async def test_series_cap_collapses_new_label_sets() -> None:
    stack = make_stack()
    collector = stack.services.metrics
    collector.max_series = 50
    for i in range(500):
        collector.child("auth_failures_total", (f"reason{i}",)).inc()
    assert collector.series_count("auth_failures_total") == 51
    assert value(stack, "auth_failures_total", reason="<other>") == 450


async def test_streaming_response_measured_to_the_end() -> None:
    seen: list[tuple[float, float]] = []

    async def streaming(scope, receive, send):
        stack_ = holder["stack"]
        get_state(scope)["route"] = "/stream"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"chunk%d\n" % i, "more_body": True})
            await asyncio.sleep(0)
            seen.append(
                (
                    value(
                        stack_, "http_request_duration_seconds_count", method="GET", route="/stream", status_class="2xx"
                    ),
                    value(stack_, "http_requests_in_flight"),
                )
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    holder: dict = {}
    stack = holder["stack"] = make_stack(streaming)
    async with stack:
        response = await request(stack, "GET", "/stream")
    assert response.body == b"chunk0\nchunk1\nchunk2\n" and len(response.chunks) == 4
    assert seen == [(0.0, 1.0)] * 3  # nothing recorded while the stream was still going
    assert value(stack, "http_request_duration_seconds_count", method="GET", route="/stream", status_class="2xx") == 1
    assert value(stack, "http_requests_in_flight") == 0


async def test_sse_agent_stream_counts_once_with_final_usage() -> None:
    stack = make_stack()
    async with stack:
        response = await request(stack, "POST", "/agents/assistant/run", {"input": "hello there", "stream": True})
    assert response.status == 200 and b"event: done" in response.body
    run = {"method": "POST", "route": "/agents/{name}/run", "status_class": "2xx"}
    assert value(stack, "http_request_duration_seconds_count", **run) == 1
    assert value(stack, "llm_tokens_total", route="/agents/{name}/run", type="completion") > 0
    assert value(stack, "agent_executions_total", agent="assistant", status="success") == 1


async def test_unhandled_exception_counts_as_5xx() -> None:
    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    stack = make_stack(broken)
    async with stack:
        response = await request(stack, "GET", "/x")
    assert response.status == 500
    assert value(stack, "http_requests_total", method="GET", route="<unmatched>", status_class="5xx") == 1
    assert value(stack, "http_requests_in_flight") == 0


@pytest.mark.parametrize(
    ("reason", "status", "metric", "labels"),
    [
        ("invalid_token", 401, "auth_failures_total", {"reason": "invalid_token"}),
        ("missing_credentials", 401, "auth_failures_total", {"reason": "missing_credentials"}),
        ("rate_limited", 429, "ratelimit_rejections_total", {"route": "/agents/{name}/run", "reason": "rate_limited"}),
        ("auth_failures_blocked", 429, "auth_failures_total", {"reason": "auth_failures_blocked"}),
        ("forbidden", 403, "authz_denials_total", {"reason": "forbidden"}),
        ("payload_too_large", 413, "request_rejections_total", {"reason": "payload_too_large"}),
        ("made_up_reason", 400, "request_rejections_total", {"reason": "<other>"}),
    ],
)
async def test_rejections_by_reason(reason: str, status: int, metric: str, labels: dict[str, str]) -> None:
    async def rejecting(scope, receive, send):
        state = get_state(scope)
        state["route"] = "/agents/{name}/run"
        state["audit_reason"] = reason
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    stack = make_stack(rejecting)
    async with stack:
        await request(stack, "POST", "/agents/a/run")
        await request(stack, "POST", "/agents/b/run")
    assert value(stack, metric, **labels) == 2
    assert (
        value(
            stack, "http_requests_total", method="POST", route="/agents/{name}/run", status_class=f"{status // 100}xx"
        )
        == 2
    )


async def test_starlette_route_template_for_a_wrapped_app() -> None:
    async def item(request):
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/items/{item_id}", item)])
    stack = make_stack(app)
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        for i in range(5):
            assert (await c.get(f"/items/{i}")).status_code == 200
        assert (await c.get("/other")).status_code == 404
    assert value(stack, "http_requests_total", method="GET", route="/items/{item_id}", status_class="2xx") == 5
    assert value(stack, "http_requests_total", method="GET", route="<unmatched>", status_class="4xx") == 1


async def test_lifespan_and_websocket_pass_through() -> None:
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    stack = make_stack(app)
    layer = stack.app
    await layer({"type": "websocket", "path": "/ws", "headers": []}, None, None)
    assert seen == ["websocket"] and value(stack, "http_requests_in_flight") == 0


async def test_metrics_route_text_and_openmetrics() -> None:
    stack = make_stack()
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        await c.get("/healthz")
        text = await c.get("/metrics")
        om = await c.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'tframex_http_requests_total{method="GET",route="/healthz",status_class="2xx"} 1.0' in text.text
    assert "tframex_process_resident_memory_bytes " in text.text
    assert om.headers["content-type"].startswith("application/openmetrics-text") and om.text.endswith("# EOF\n")
    # The scrape itself is counted under its route.
    assert value(stack, "http_requests_total", method="GET", route="/metrics", status_class="2xx") == 2


async def test_write_queue_stats_are_observed() -> None:
    class Writer:
        depth, spilled_total, written_total, dropped_total = 3, 7, 100, 0

    stack = make_stack()
    async with stack:
        assert value(stack, "audit_queue_depth") == 0.0  # no writer: no sample
        stack.services.writer = Writer()
        assert value(stack, "audit_queue_depth") == 3
        assert value(stack, "audit_spilled_total") == 7
        assert value(stack, "audit_dropped_total") == 0
        Writer.depth = 0
        assert value(stack, "audit_queue_depth") == 0


async def test_separate_exposition_port() -> None:
    port = free_port()
    stack = make_stack(prometheus={"enabled": True, "port": port, "host": "127.0.0.1"})
    async with stack:
        assert (await request(stack, "GET", "/metrics")).status == 404  # not served in-app
        async with httpx.AsyncClient() as c:
            r = await c.get(f"http://127.0.0.1:{port}/metrics")
        assert r.status_code == 200
        assert 'tframex_http_requests_total{method="GET",route="<unmatched>",status_class="4xx"} 1.0' in r.text
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as c:
            await c.get(f"http://127.0.0.1:{port}/metrics")


async def test_enabled_without_backends_defaults_to_prometheus() -> None:
    from tests.metrics.helpers import endpoint
    from tframex_asgi import build_stack

    stack = build_stack(endpoint(), enable_security=False, enable_metrics=True)
    assert stack.layers == ("context", "metrics", "routes")
    async with stack:
        assert (await request(stack, "GET", "/metrics")).status == 200


async def test_status_codes_of_one_class_share_one_series() -> None:
    codes = iter([200, 201, 204, 404, 418, 200])

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": next(codes), "headers": []})
        await send({"type": "http.response.body", "body": b""})

    stack = make_stack(app)
    async with stack:
        for _ in range(6):
            await request(stack, "GET", "/x")
    labels = {"method": "GET", "route": "<unmatched>"}
    assert value(stack, "http_requests_total", **labels, status_class="2xx") == 4
    assert value(stack, "http_requests_total", **labels, status_class="4xx") == 2
    assert value(stack, "http_request_duration_seconds_count", **labels, status_class="2xx") == 4
    assert series(stack, "http_requests") == {
        tuple(sorted({**labels, "status_class": c}.items())) for c in ("2xx", "4xx")
    }
