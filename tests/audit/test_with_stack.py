"""The audit layer inside the real stack: every 401/403/413/429 from the other layers gives exactly
one row carrying their reason; GET /audit is served behind audit.view; admin changes are audited."""

from __future__ import annotations

import json
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tframex_asgi.auth.store import get_identity_store
from tframex_asgi.rbac.engine import get_rbac
from tframex_asgi.stack import build_stack


async def agents(request: Request) -> JSONResponse:
    return JSONResponse([])


async def run(request: Request) -> JSONResponse:
    return JSONResponse({"bytes": len(await request.body())})


def make_stack() -> Any:
    app = Starlette(routes=[Route("/agents", agents), Route("/agents/{name}/run", run, methods=["POST"])])
    stack = build_stack(
        app,
        {
            "persistence": {"enabled": True, "connection_string": "memory://"},
            "security": {
                "auth_providers": ["api_key"],
                "max_body_bytes": 64,
                "rate_limiting": {
                    "enabled": True,
                    "storage": "memory://",
                    "default": "8/minute",
                    "auth_failures": "100/minute",
                },
                "audit": {"level": "security"},
            },
        },
    )
    app.router.routes.extend(stack.services.routes)  # what the TFrameX endpoint does itself
    return stack


async def test_each_rejection_gives_exactly_one_row_with_its_reason() -> None:
    stack = make_stack()
    async with stack:
        services = stack.services
        identity = get_identity_store(services)
        alice = await identity.create_user("alice")
        admin = await identity.create_user("root")
        await get_rbac(services).grant(str(admin["id"]), "admin")
        _, alice_key = await identity.create_api_key(str(alice["id"]))
        _, admin_key = await identity.create_api_key(str(admin["id"]))
        expected: dict[str, tuple[int, str]] = {}
        transport = httpx.ASGITransport(app=stack, client=("192.0.2.7", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:

            async def call(
                method: str, path: str, key: str | None = None, body: bytes = b"", want: tuple[int, str] | None = None
            ) -> httpx.Response:
                headers = {"x-api-key": key} if key else {}
                response = await c.request(method, path, headers=headers, content=body)
                if want is not None:
                    assert response.status_code == want[0], response.text
                    expected[response.headers["x-request-id"]] = want
                return response

            await call("GET", "/agents", want=(401, "missing_credentials"))
            await call("GET", "/agents", "tfx_not_a_real_key_000000000000", want=(401, "invalid_credentials"))
            await call("GET", "/agents", alice_key, want=(403, "forbidden"))
            await call("GET", "/nope", alice_key, want=(403, "unmapped_route"))
            await call("POST", "/agents/a/run", alice_key, b"x" * 500, want=(413, "payload_too_large"))
            denied_view = await call("GET", "/audit", alice_key, want=(403, "forbidden"))
            assert "items" not in denied_view.json()
            ok = await call("POST", "/agents/a/run", alice_key, b"{}")
            assert ok.status_code == 200
            for _ in range(20):
                response = await call("POST", "/agents/a/run", alice_key, b"{}")
                if response.status_code == 429:
                    expected[response.headers["x-request-id"]] = (429, "rate_limited")
                    break
            else:
                raise AssertionError("never rate limited")
            listing = await call("GET", "/audit", admin_key, want=None)
            assert listing.status_code == 200
            rows = listing.json()["items"]
        await services.writer.flush()
        stored = await services.storage.read("audit_logs")
        events = await services.storage.read("events")
    by_request: dict[str, list[dict[str, Any]]] = {}
    for row in stored:
        by_request.setdefault(row["request_id"], []).append(row)
    for request_id, (status, reason) in expected.items():
        found = by_request.get(request_id, [])
        assert len(found) == 1, (request_id, status, reason, found)
        assert (found[0]["new_values"]["status_code"], found[0]["reason"]) == (status, reason)
        assert found[0]["ip_address"] == "192.0.2.7"
    # Level security: the successful requests (and the admin's GET /audit) are not recorded.
    assert {r["request_id"] for r in stored if r["action"] != "audit.chain_end"} == set(expected)
    assert len(events) == len(expected)
    # GET /audit saw the rejections recorded before it; no key ever appears.
    assert {r["reason"] for r in rows} >= {"missing_credentials", "forbidden", "payload_too_large", "rate_limited"}
    text = json.dumps(stored, default=str) + json.dumps(events, default=str)
    assert alice_key not in text and admin_key not in text
