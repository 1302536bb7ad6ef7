"""The whole stack around the TFrameX endpoint: real API keys, route permissions, and the
resource-level rule (conversations: own rows only unless system.admin)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.asgi_harness import request
from tests.rbac.conftest import SECURE, client
from tframex_asgi import build_stack
from tframex_asgi.admin.bootstrap import bootstrap_admin
from tframex_asgi.admin.service import get_admin
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint


class World:
    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.keys: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    def h(self, who: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[who]}


@pytest.fixture
async def world() -> AsyncIterator[World]:
    stack = build_stack(TFrameXEndpoint(build_demo_app()), **SECURE)
    assert "authorization" in stack.layers
    async with stack:
        w = World(stack)
        created = await bootstrap_admin(stack.services)
        assert created is not None
        w.keys["admin"] = created[1]
        admin = get_admin(stack.services)
        for name, roles in (("alice", []), ("bob", []), ("ops", ["operator"]), ("dev", ["developer"])):
            user = await admin.create_user(name, roles=roles)
            w.ids[name] = str(user["id"])
            w.keys[name] = (await admin.create_key(str(user["id"])))[1]
        yield w


async def test_route_permissions_through_the_stack(world: World) -> None:
    async with client(world.stack) as c:
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/agents")).status_code == 401
        assert (await c.get("/agents", headers=world.h("alice"))).status_code == 403  # user role: no agent.view
        assert (await c.get("/agents", headers=world.h("dev"))).status_code == 200
        assert (await c.get("/metrics", headers=world.h("alice"))).status_code == 403
        assert (await c.get("/admin/users", headers=world.h("dev"))).status_code == 403
        assert (await c.get("/admin/users", headers=world.h("admin"))).status_code == 200
        denied = await c.get("/nowhere", headers=world.h("admin"))
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"


async def test_method_switching_through_the_stack(world: World) -> None:
    async with client(world.stack) as c:
        assert (await c.head("/agents", headers=world.h("dev"))).status_code == 200
        assert (await c.head("/agents", headers=world.h("alice"))).status_code == 403
        assert (await c.options("/agents", headers=world.h("admin"))).status_code == 403
        assert (await c.request("PROPFIND", "/agents", headers=world.h("admin"))).status_code == 403
        # GET on a POST-only route is unmapped, not silently allowed.
        assert (await c.get("/agents/assistant/run", headers=world.h("admin"))).status_code == 403
        override = {**world.h("alice"), "X-HTTP-Method-Override": "DELETE"}
        assert (await c.get("/conversations", headers=override)).status_code == 403


@pytest.mark.parametrize(
    ("raw", "path"),
    [  # (raw_path as sent, path as uvicorn decodes it)
        (b"/agents/%2e%2e/admin/users", "/agents/../admin/users"),
        (b"/admin%2Fusers", "/admin/users"),
        (b"//admin/users", "//admin/users"),
        (b"/conversations;/x", "/conversations;/x"),
    ],
)
async def test_uvicorn_decoded_path_tricks_are_400(world: World, raw: bytes, path: str) -> None:
    async def decoded_like_uvicorn(scope: dict, receive: Any, send: Any) -> None:
        scope["raw_path"], scope["path"] = raw, path
        await world.stack(scope, receive, send)

    resp = await request(decoded_like_uvicorn, "GET", "/placeholder", headers=world.h("admin"))
    assert resp.status == 400 and resp.json()["error"]["code"] == "bad_path"


async def test_conversations_are_private_unless_system_admin(world: World) -> None:
    async with client(world.stack) as c:
        run = await c.post("/agents/assistant/run", json={"input": "hello"}, headers=world.h("alice"))
        assert run.status_code == 200, run.text
        cid = run.json()["conversation_id"]
        mine = await c.get("/conversations", headers=world.h("alice"))
        assert [r["id"] for r in mine.json()["conversations"]] == [cid]
        assert (await c.get(f"/conversations/{cid}", headers=world.h("alice"))).status_code == 200
        # Another user with data.read sees nothing of it, even asking for all.
        theirs = await c.get("/conversations?all=true", headers=world.h("bob"))
        assert theirs.status_code == 200 and theirs.json()["conversations"] == []
        assert (await c.get(f"/conversations/{cid}", headers=world.h("bob"))).status_code == 404
        # Bob cannot continue Alice's conversation either.
        hijack = await c.post("/agents/assistant/run", json={"input": "x", "conversation_id": cid},
                              headers=world.h("bob"))  # fmt: skip
        assert hijack.status_code == 404
        # data.delete is not in the user role.
        assert (await c.delete(f"/conversations/{cid}", headers=world.h("alice"))).status_code == 403
        # The admin (system.admin) sees and reads everyone's.
        everyone = await c.get("/conversations?all=true", headers=world.h("admin"))
        assert cid in [r["id"] for r in everyone.json()["conversations"]]
        assert (await c.get(f"/conversations/{cid}", headers=world.h("admin"))).status_code == 200
        # The operator (system.admin, plus data.read from the default role) sees them too.
        ops = await c.get("/conversations?all=true", headers=world.h("ops"))
        assert cid in [r["id"] for r in ops.json()["conversations"]]
        # Without ?all=true even an admin lists only their own.
        assert (await c.get("/conversations", headers=world.h("admin"))).json()["conversations"] == []
        assert (await c.delete(f"/conversations/{cid}", headers=world.h("admin"))).status_code == 204
