"""The apps under the layers: one JSON route, so the overhead measured is the layers', not an agent's."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["PATH", "bare_fastapi", "bare_starlette"]

PATH = "/bench"
PAYLOAD = {"ok": True, "items": [1, 2, 3]}


async def _bench(request: Request) -> JSONResponse:
    return JSONResponse(PAYLOAD)


def bare_starlette(requires: str | None = None) -> Starlette:
    """Starlette with one ``GET /bench`` JSON route; ``requires`` guards it with
    ``starlette.authentication.requires`` (what a peer stack uses instead of RBAC)."""
    endpoint: Any = _bench
    if requires is not None:
        from starlette.authentication import requires as guard

        endpoint = guard(requires)(_bench)
    return Starlette(routes=[Route(PATH, endpoint, methods=["GET"])])


def bare_fastapi() -> Any:
    """The same route in FastAPI (for the peers made for FastAPI)."""
    from fastapi import FastAPI

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get(PATH)
    async def bench() -> dict[str, Any]:
        return PAYLOAD

    return app
