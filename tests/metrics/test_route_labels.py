"""The route template is matched once, early: a 401 from authentication and a 429 from the rate
limiter are labelled with their route, not `<unmatched>` (unmapped paths still are)."""

from __future__ import annotations

import httpx

from tests.metrics.helpers import value
from tests.test_routes_layer import starlette_app
from tframex_asgi import build_stack
from tframex_asgi.admin.bootstrap import bootstrap_admin


async def test_401_and_429_carry_the_route_template() -> None:
    stack = build_stack(
        starlette_app(),
        enable_metrics=True,
        security_config={
            "auth_providers": ["api_key"],
            "audit": "off",
            "rbac": {"routes": {"GET /hello": "metrics.view"}},
            "rate_limiting": {"enabled": True, "default": "1000/minute", "routes": {"GET /hello": "1/minute"}},
        },
    )
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as http:
        created = await bootstrap_admin(stack.services)
        assert created is not None
        key = {"X-API-Key": created[1]}
        assert (await http.get("/hello")).status_code == 401
        assert (await http.get("/hello", headers={"X-API-Key": "tfx_" + "x" * 43})).status_code == 401
        assert (await http.get("/hello", headers=key)).status_code == 200
        assert (await http.get("/hello", headers=key)).status_code == 429
        assert (await http.get("/nowhere", headers=key)).status_code == 403
    four = {"method": "GET", "route": "/hello", "status_class": "4xx"}
    assert value(stack, "http_requests_total", **four) == 3.0
    assert value(stack, "http_requests_total", method="GET", route="/hello", status_class="2xx") == 1.0
    assert value(stack, "ratelimit_rejections_total", route="/hello", reason="rate_limited") == 1.0
    assert value(stack, "http_requests_total", method="GET", route="<unmatched>", status_class="4xx") == 1.0
