"""Every example in examples/ is imported and exercised: Starlette, FastAPI, Quart, ASGI 2, WSGI.

Each example keeps users and keys in SQLite ($DATABASE_URL, here a fresh file per test); the test
provisions a user with a role and an API key there, as `tframex-asgi users/keys` would. The
examples served by a real server, and logged in to with the key they print, are in
test_examples_served.py.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import httpx
import pytest

from tests.asgi_harness import Lifespan
from tframex_asgi.auth.store import get_identity_store
from tframex_asgi.rbac.engine import get_rbac
from tframex_asgi.stack import EnterpriseStack


@pytest.fixture(autouse=True)
def example_database(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/example.db")


def find_stack(app: Any) -> EnterpriseStack:
    """The EnterpriseStack inside ``app`` (Starlette builds its middleware stack on first use)."""
    seen: set[int] = set()
    todo = [app]
    while todo:
        obj = todo.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, EnterpriseStack):
            return obj
        todo.extend(getattr(obj, a, None) for a in ("middleware_stack", "app", "asgi_app"))
    raise AssertionError(f"no EnterpriseStack inside {app!r}")


async def provision(stack: EnterpriseStack, role: str) -> dict[str, str]:
    store = get_identity_store(stack.services)
    user = await store.create_user("example-user")
    await get_rbac(stack.services).grant(str(user["id"]), role)
    _, key = await store.create_api_key(str(user["id"]), name="example")
    return {"X-API-Key": key}


def load(name: str) -> Any:
    sys.modules.pop(f"examples.{name}", None)  # a fresh app (and stack) per test
    return importlib.import_module(f"examples.{name}").app


async def started(app: Any) -> tuple[Lifespan, EnterpriseStack]:
    life = Lifespan(app)
    answer = await life.startup()
    assert answer["type"] == "lifespan.startup.complete", answer
    return life, find_stack(app)


async def test_starlette_example() -> None:
    app = load("starlette_app")
    life, stack = await started(app)
    try:
        headers = await provision(stack, "developer")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
            assert (await c.get("/whoami")).status_code == 401
            me = (await c.get("/whoami", headers=headers)).json()
            assert me["user"] == "example-user" and "agent.view" in me["permissions"]
            agents = (await c.get("/agents", headers=headers)).json()["agents"]
            assert {a["name"] for a in agents} == {"assistant", "calculator", "shouter"}
            # every stored user also has the default role "user" (agent.execute), but not user.manage
            assert (await c.post("/agents/assistant/run", headers=headers, json={"input": "x"})).status_code == 200
            assert (await c.get("/admin/users", headers=headers)).status_code == 403
    finally:
        await life.shutdown()


async def test_fastapi_example_with_permission_dependency() -> None:
    app = load("fastapi_app")
    life, stack = await started(app)
    try:
        viewer = await provision(stack, "developer")  # has metrics.view
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
            assert (await c.get("/reports/usage")).status_code == 401
            ok = await c.get("/reports/usage", headers=viewer)
            assert ok.status_code == 200 and ok.json() == {"requested_by": "example-user"}
            assert (await c.get("/audit", headers=viewer)).status_code == 403  # no audit.view
    finally:
        await life.shutdown()


async def test_fastapi_dependency_refuses_a_user_without_the_permission() -> None:
    app = load("fastapi_app")
    life, stack = await started(app)
    try:
        plain = await provision(stack, "user")  # no metrics.view
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
            assert (await c.get("/reports/usage", headers=plain)).status_code == 403
            run = await c.post("/agents/assistant/run", headers=plain, json={"input": "hi"})
            assert run.status_code == 200 and run.json()["output"] == "Echo: hi"
    finally:
        await life.shutdown()


async def test_quart_example() -> None:
    pytest.importorskip("quart")
    app = load("quart_app")
    stack = find_stack(app.asgi_app)
    async with stack:
        headers = await provision(stack, "developer")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app.asgi_app), base_url="http://t") as c:
            assert (await c.get("/hello")).status_code == 401
            resp = await c.get("/hello", headers={**headers, "X-Request-ID": "quart-1"})
            assert resp.status_code == 200
            assert resp.json() == {"hello": "example-user", "request_id": "quart-1"}


@pytest.mark.parametrize(
    ("name", "body"), [("legacy_asgi2_app", "legacy hello, example-user"), ("wsgi_app", "wsgi hello from /")]
)
async def test_legacy_and_wsgi_examples(name: str, body: str) -> None:
    app = load(name)
    stack = find_stack(app)
    async with stack:
        headers = await provision(stack, "developer")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
            assert (await c.get("/")).status_code == 401
            resp = await c.get("/", headers=headers)
            assert resp.status_code == 200 and resp.text == body
            assert (await c.get("/other", headers=headers)).status_code == 403  # unmapped: deny by default
