"""``GET /metrics`` served by the TFrameX endpoint (so authentication and the ``metrics.view``
permission apply), served from ``services.routes``."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tframex_asgi.context import get_state
from tframex_asgi.metrics.collector import MetricsCollector
from tframex_asgi.metrics.prometheus import PrometheusBackend

__all__ = ["metrics_route"]


def metrics_route(backend: PrometheusBackend, collector: MetricsCollector) -> Route:
    path = backend.config.path

    async def metrics(request: Request) -> Response:
        get_state(request.scope)["route"] = path
        if backend.multiprocess:
            # This worker's observed values go to its file before the files are read.
            collector.sample()
        # Rendering walks every series: off the event loop so a scrape never stalls requests.
        body, content_type = await run_in_threadpool(backend.render, request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    return Route(path, metrics, methods=["GET"])
