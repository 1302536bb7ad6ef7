"""What clients see during a Redis outage with ``fail_open: false`` (own redis-server, killed and
restarted; never the shared one):

    .venv/bin/python -m benchmarks.bench_redis_outage

Prints the statuses of requests sent for 3 s while Redis is down, and how long after the restarted
server answers PING the first request is served again.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.own_services import OwnRedis
from tframex_asgi import build_stack
from tframex_asgi.auth.store import get_identity_store


async def main() -> None:
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not installed"
    r = OwnRedis(binary)
    r.start()
    tmp = tempfile.mkdtemp()
    app = Starlette(routes=[Route("/me", lambda req: JSONResponse({"ok": 1}))])
    stack = build_stack(
        app,
        enable_persistence=True,
        persistence_config={"connection_string": f"sqlite:///{tmp}/i.db"},
        enable_security=True,
        security_config={
            "auth_providers": {"api_key": True},
            "rbac": {"enabled": False},
            "rate_limiting": {"enabled": True, "storage": r.url, "fail_open": False, "default": "100000/minute"},
            "audit": "off",
        },
    )
    try:
        async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
            store = get_identity_store(stack.services)
            u = await store.create_user("m")
            _, key = await store.create_api_key(u["id"])
            h = {"X-API-Key": key}
            assert (await c.get("/me", headers=h)).status_code == 200
            r.kill()
            codes: dict[int, int] = {}
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3:
                s = (await c.get("/me", headers=h)).status_code
                codes[s] = codes.get(s, 0) + 1
                await asyncio.sleep(0.005)
            print("while down (3 s):", codes)
            r.start()
            back = time.monotonic()
            while (await c.get("/me", headers=h)).status_code != 200:  # noqa: ASYNC110 - polling the server
                await asyncio.sleep(0.005)
            print("first 200 after redis answered: %.3f s" % (time.monotonic() - back))
            await store.drain()
    finally:
        r.destroy()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
