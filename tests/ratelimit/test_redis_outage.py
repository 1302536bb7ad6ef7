"""A real Redis outage with ``fail_open: false``: every request gets the documented 503
``ratelimit_unavailable`` with ``Retry-After`` (never the brute-force guard's 429), and service
returns within one cooldown of Redis answering again.

The test runs its own ``redis-server`` on a random loopback port and kills and restarts only that
process (by its pid); the shared Redis on 6379 is never touched.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests import own_services
from tests.auth.conftest import FAST
from tests.own_services import OwnRedis
from tframex_asgi import build_stack
from tframex_asgi.auth.store import get_identity_store

own_redis = own_services.own_redis  # the fixture


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.user.display_name})


COOLDOWN = 0.5


async def test_fail_closed_outage_is_503_for_every_request_and_recovers(own_redis: OwnRedis, tmp_path: Path) -> None:
    app = Starlette(routes=[Route("/me", whoami)])
    stack = build_stack(
        app,
        enable_persistence=True,
        persistence_config={"connection_string": f"sqlite:///{tmp_path}/ids.db"},
        enable_security=True,
        security_config={
            "auth_providers": {"api_key": True, "basic": {"enabled": True, **FAST}},
            "rbac": {"enabled": False},
            "rate_limiting": {
                "enabled": True,
                "storage": own_redis.url,
                "fail_open": False,
                "cooldown": COOLDOWN,
                # Above the default 0.25 s: once in a whole-suite run, a warm-up request's first
                # connect to this fresh server timed out (the cause was not found; the suite's
                # process is large and busy). The dead server below refuses connections at once.
                "timeout": 2.0,
                "default": "1000/minute",
                "auth_failures": "3/minute",
            },
            "audit": "off",
        },
    )
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as client:
        store = get_identity_store(stack.services)
        user = await store.create_user("dora", password="pw")
        _, key = await store.create_api_key(user["id"])
        good = {"X-API-Key": key}
        bad = {"X-API-Key": key[:-4] + "AAAA"}
        # Concurrent requests fill the pool with several connections, all dead after the kill.
        warm = await asyncio.gather(*(client.get("/me", headers=good) for _ in range(20)))
        assert {r.status_code for r in warm} == {200}

        own_redis.kill()
        answers = []
        for i in range(12):  # more than the 3 failures the guard allows, valid and invalid keys mixed
            answers.append(await client.get("/me", headers=good if i % 2 == 0 else bad))
            if i == 5:
                await asyncio.sleep(COOLDOWN + 0.1)  # the circuit retries the dead server: still 503
        for resp in answers:
            assert resp.status_code == 503, (resp.status_code, resp.text)
            assert resp.json()["error"]["code"] == "ratelimit_unavailable"
            assert int(resp.headers["retry-after"]) >= 1

        own_redis.start()
        # Within one cooldown of Redis answering, the circuit tries it again and it answers: a
        # pooled connection from before the kill is dead, and redis-py replaces it inside the
        # call, so the probe is served rather than failed.
        await asyncio.sleep(COOLDOWN + 0.1)
        first = await client.get("/me", headers=good)
        assert first.status_code == 200, first.text
        back = await asyncio.gather(*(client.get("/me", headers=good) for _ in range(20)))
        assert [r.status_code for r in back] == [200] * 20, [r.text for r in back if r.status_code != 200]
        assert back[0].json()["user"] == "dora"
        # And the guard counts failures again (it did not count while Redis was down).
        statuses = [(await client.get("/me", headers=bad)).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        await store.drain()
