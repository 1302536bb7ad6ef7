"""Issue 11.4: a request presenting more than one credential is refused whatever the provider
order, and each credential in it counts against the brute-force budget of its address. Before,
a wrong Basic password for a victim carried next to the attacker's own valid key got through
(the key won) and was never counted: password guessing at the general rate limit."""

from __future__ import annotations

import base64

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.auth.conftest import FAST
from tframex_asgi import build_stack
from tframex_asgi.auth.store import get_identity_store


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.user.display_name, "method": request.user.auth_method})


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("order", [["basic", "api_key"], ["api_key", "basic"]])
async def test_guess_beside_a_valid_key_is_refused_and_counted(order, tmp_path) -> None:
    audit_reasons: list[str | None] = []
    inner = Starlette(routes=[Route("/me", whoami)])

    async def app(scope, receive, send):
        await inner(scope, receive, send)

    stack = build_stack(
        app,
        enable_persistence=True,
        persistence_config={"connection_string": f"sqlite:///{tmp_path}/several.db"},
        security_config={
            "auth_providers": {
                "api_key": True,
                "basic": {"enabled": True, **FAST},
                "order": order,
            },
            "rbac": {"routes": {"GET /me": "agent.view"}},
            "rate_limiting": {"enabled": True, "default": "1000/minute", "auth_failures": "5/minute"},
            "audit": "off",
        },
    )

    async def recording(scope, receive, send):
        await stack(scope, receive, send)
        audit_reasons.append(scope.get("tframex", {}).get("audit_reason"))

    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(recording), base_url="http://t") as client:
        store = get_identity_store(stack.services)
        victim = await store.create_user("victim", password="secret-pw")
        await stack.services.rbac.grant(victim["id"], "developer")
        attacker = await store.create_user("attacker", password="own-pw")
        await stack.services.rbac.grant(attacker["id"], "developer")
        _, key = await store.create_api_key(attacker["id"])
        assert (await client.get("/me", headers={"X-API-Key": key})).json()["user"] == "attacker"

        guesses = [
            await client.get("/me", headers={"Authorization": basic("victim", f"guess{i}"), "X-API-Key": key})
            for i in range(3)
        ]
        # Each request carries two credentials: both count, so the 5/minute budget is spent
        # after the third request (6 failures) and the next one is blocked.
        assert [r.status_code for r in guesses] == [401, 401, 401]
        assert all(r.json()["error"]["code"] == "unauthenticated" for r in guesses)
        assert all(r.headers.get("www-authenticate") for r in guesses)
        assert audit_reasons[1:4] == ["multiple_credentials"] * 3
        # Even the right password next to a key is refused: the pair proves nothing.
        right = await client.get("/me", headers={"Authorization": basic("victim", "secret-pw"), "X-API-Key": key})
        assert right.status_code == 429 and int(right.headers["retry-after"]) >= 1
        blocked = await client.get("/me", headers={"Authorization": basic("victim", "secret-pw")})
        assert blocked.status_code == 429
        await store.drain()


async def test_bearer_key_beside_an_api_key_header_is_refused(tmp_path) -> None:
    stack = build_stack(
        Starlette(routes=[Route("/me", whoami)]),
        security_config={
            "auth_providers": ["api_key"],
            "rbac": {"routes": {"GET /me": "agent.view"}},
            "audit": "off",
        },
    )
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as client:
        store = get_identity_store(stack.services)
        user = await store.create_user("dev")
        await stack.services.rbac.grant(user["id"], "developer")
        _, mine = await store.create_api_key(user["id"])
        _, other = await store.create_api_key(user["id"])
        both = await client.get("/me", headers={"Authorization": f"Bearer {mine}", "X-API-Key": other})
        assert both.status_code == 401
        assert (await client.get("/me", headers={"Authorization": f"Bearer {mine}"})).json()["method"] == "api_key"
