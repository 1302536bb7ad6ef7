"""With security on, MCP tools are guarded like native ones: listing needs tool.view, calling
needs tool.call, and an anonymous caller gets 401 before any MCP server is reached."""

from __future__ import annotations

from pathlib import Path

from tframex import TFrameXApp

from tests.mcp.conftest import client, stdio, write_config
from tests.rbac.conftest import SECURE
from tframex_asgi import build_stack
from tframex_asgi.admin.bootstrap import bootstrap_admin
from tframex_asgi.admin.service import get_admin
from tframex_asgi.endpoint import TFrameXEndpoint


async def test_route_permissions_apply_to_mcp_tools(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"math": stdio()})
    stack = build_stack(TFrameXEndpoint(TFrameXApp(mcp_config_file=str(config))), **SECURE)
    async with stack, client(stack) as c:
        created = await bootstrap_admin(stack.services)
        assert created is not None
        admin = get_admin(stack.services)
        keys = {"admin": created[1]}
        for name, roles in (("caller", []), ("viewer", ["developer"])):
            user = await admin.create_user(name, roles=roles)
            keys[name] = (await admin.create_key(str(user["id"])))[1]

        def h(who: str) -> dict[str, str]:
            return {"X-API-Key": keys[who]}

        call = {"arguments": {"a": 2, "b": 3}}
        assert (await c.post("/tools/math__add/call", json=call)).status_code == 401
        # "user" role (every user): tool.call, no tool.view.
        assert (await c.get("/tools", headers=h("caller"))).status_code == 403
        ok = await c.post("/tools/math__add/call", json=call, headers=h("caller"))
        assert ok.status_code == 200 and ok.json()["result"] == "5"
        # developer: tool.view as well, so it sees the MCP tools with their schemas.
        listed = await c.get("/tools", headers=h("viewer"))
        assert listed.status_code == 200
        assert "math__add" in {t["name"] for t in listed.json()["tools"]}
        assert (await c.post("/tools/math__add/call", json=call, headers=h("admin"))).status_code == 200


async def test_resource_rules_guard_mcp_tools(tmp_path: Path) -> None:
    """rbac.resources.tools applies to an MCP tool as to a native one: a caller without the named
    permission gets 403 on the tool's route, and an admin (who holds every declared permission) runs it."""
    config = write_config(tmp_path, {"math": stdio()})
    secure = {
        "enable_security": True,
        "security_config": {
            "auth_providers": ["api_key"],
            "audit": "off",
            "rbac": {"resources": {"tools": {"math__add": "math.use"}}},
        },
    }
    stack = build_stack(TFrameXEndpoint(TFrameXApp(mcp_config_file=str(config))), **secure)
    async with stack, client(stack) as c:
        created = await bootstrap_admin(stack.services)
        assert created is not None
        admin = get_admin(stack.services)
        user = await admin.create_user("caller", roles=[])
        caller_key = (await admin.create_key(str(user["id"])))[1]
        call = {"arguments": {"a": 2, "b": 3}}
        refused = await c.post("/tools/math__add/call", json=call, headers={"X-API-Key": caller_key})
        assert refused.status_code == 403
        ok = await c.post("/tools/math__add/call", json=call, headers={"X-API-Key": created[1]})
        assert ok.status_code == 200 and ok.json()["result"] == "5"
