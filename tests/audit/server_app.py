"""A small app behind the whole stack (audit level full), served by a real uvicorn in the tests.

``create()`` reads its database URL and spill path from the environment (uvicorn --factory).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tframex_asgi.stack import build_stack

IN_FLIGHT = 0


async def slow(request: Request) -> JSONResponse:
    global IN_FLIGHT
    IN_FLIGHT += 1
    try:
        # Long enough that SIGTERM arrives while many of these are still running.
        await asyncio.sleep(float(request.query_params.get("s", "1.5")))
    finally:
        IN_FLIGHT -= 1
    return JSONResponse({"ok": True})


async def inflight(request: Request) -> JSONResponse:
    return JSONResponse({"in_flight": IN_FLIGHT})


def config(url: str, spill: str) -> dict[str, Any]:
    return {
        "persistence": {
            "enabled": True,
            "connection_string": url,
            "queue": {"spill_path": spill, "batch_size": 50, "flush_interval": 0.05},
        },
        "security": {
            "auth_providers": ["api_key"],
            "public_paths": ["/healthz", "/slow", "/inflight"],
            "audit": {"level": "full", "hmac_key": "server-app-hmac-key-0123"},
        },
    }


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/slow", slow),
            Route("/inflight", inflight),
            Route("/healthz", lambda r: JSONResponse({"ok": True})),
            Route("/secret", slow),
        ]
    )


def create() -> Any:
    return build_stack(starlette_app(), config(os.environ["AUDIT_TEST_DB"], os.environ["AUDIT_TEST_SPILL"]))
