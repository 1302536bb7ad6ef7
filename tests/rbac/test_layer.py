"""AuthorizationMiddleware alone on a bare ASGI app: deny by default, path tricks, method switching."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.authentication import AuthCredentials, UnauthenticatedUser

from tests.asgi_harness import request
from tests.rbac.conftest import principal
from tframex_asgi.context import get_state
from tframex_asgi.rbac.layer import AuthorizationMiddleware

SEEN: list[dict[str, Any]] = []


async def app(scope: dict, receive: Any, send: Any) -> None:
    SEEN.append({"path": scope["path"], "route": get_state(scope).get("route")})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ran"})


def authenticated(inner: Any, perms: list[str] | None) -> Any:
    """Stands in for the authentication layer: ``perms=None`` is an anonymous caller."""

    async def layer(scope: dict, receive: Any, send: Any) -> None:
        if perms is None:
            scope["user"], scope["auth"] = UnauthenticatedUser(), AuthCredentials([])
        else:
            scope["user"], scope["auth"] = principal(perms), AuthCredentials(sorted(perms))
        await inner(scope, receive, send)

    return layer


def stack(perms: list[str] | None, **kw: Any) -> Any:
    return authenticated(AuthorizationMiddleware(app, **kw), perms)


async def call(
    perms: list[str] | None, method: str, raw: str, headers: dict[str, str] | None = None, **kw: Any
) -> tuple[int, dict[str, Any], Any]:
    """One request; returns (status, state, json body or b"ran")."""
    states: list[dict[str, Any]] = []
    mw = AuthorizationMiddleware(app, **kw)

    async def keep_state(scope: dict, receive: Any, send: Any) -> None:
        scope["tframex"] = {}
        states.append(scope["tframex"])
        await authenticated(mw, perms)(scope, receive, send)

    SEEN.clear()
    resp = await request(keep_state, method, raw, headers=headers)
    body = resp.body if resp.body == b"ran" else resp.json()
    assert (resp.status == 200) == bool(SEEN), "the app must run exactly when the request is allowed"
    return resp.status, states[0], body


async def test_mapped_routes_need_their_permission() -> None:
    assert (await call(["agent.view"], "GET", "/agents"))[0] == 200
    status, state, body = await call(["agent.execute"], "GET", "/agents")
    assert status == 403 and state["audit_reason"] == "forbidden" and state["route"] == "/agents"
    assert body == {"error": {"code": "forbidden", "message": "missing permission agent.view"}}
    assert (await call(["agent.execute"], "POST", "/agents/calc/run"))[0] == 200
    assert (await call(["agent.view"], "POST", "/agents/calc/run"))[0] == 403
    status, state, _ = await call(["data.read"], "GET", "/conversations/abc")
    assert status == 200 and state["route"] == "/conversations/{id}" and SEEN[0]["route"] == "/conversations/{id}"
    assert (await call(["data.read"], "DELETE", "/conversations/abc"))[0] == 403
    assert (await call(["user.manage"], "GET", "/admin/roles"))[0] == 403
    assert (await call(["role.manage"], "GET", "/admin/roles"))[0] == 200


async def test_unmapped_routes_and_methods_are_denied_even_to_admins() -> None:
    everything = ["agent.view", "agent.execute", "system.admin", "user.manage", "role.manage"]
    for method, path in [
        ("GET", "/nope"),
        ("PUT", "/agents"),
        ("OPTIONS", "/agents"),
        ("TRACE", "/agents"),
        ("get", "/agents"),
        ("FOO", "/agents"),
        ("CONNECT", "/agents"),
        ("GET", "/agents/calc/run"),
    ]:
        status, state, body = await call(everything, method, path)
        assert status == 403, (method, path)
        assert state["audit_reason"] == "unmapped_route" and state["route"] == "<unmatched>"
        assert body["error"]["code"] == "forbidden"


async def test_head_is_get() -> None:
    assert (await call(["agent.view"], "HEAD", "/agents"))[0] == 200
    assert (await call(["tool.view"], "HEAD", "/agents"))[0] == 403
    assert (await call(["agent.execute"], "HEAD", "/agents/x/run"))[0] == 403  # POST-only route


@pytest.mark.parametrize(
    "raw",
    [
        "//agents",
        "/agents/../admin/users",
        "/agents/%2e%2e/admin/users",
        "/agents/%2E%2E/admin/users",
        "/admin%2Fusers",
        "/admin/users;x=1",
        "/agents%5c..%5cadmin",
        "/./admin/users",
        "/agents%252e%252e",
        "/agents/%00",
        "/agents%2f..%2fadmin%2fusers",
    ],
)
async def test_path_tricks_are_400_bad_path(raw: str) -> None:
    status, state, body = await call(["agent.view", "user.manage"], "GET", raw)
    assert status == 400 and state["audit_reason"] == "bad_path"
    assert body["error"]["code"] == "bad_path"


async def test_case_and_trailing_slash_variants_need_the_same_permission() -> None:
    for raw in ["/ADMIN/users", "/Admin/Users/", "/admin/users/"]:
        assert (await call(["agent.view"], "GET", raw))[0] == 403, raw
        assert (await call(["user.manage"], "GET", raw))[0] == 200, raw
    assert (await call(["agent.view"], "GET", "/agents/"))[0] == 200


async def test_method_override_headers_are_refused() -> None:
    for header in ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"):
        status, state, _ = await call(["data.read"], "GET", "/conversations/1", headers={header: "DELETE"})
        assert status == 403 and state["audit_reason"] == "forbidden"
    # Naming the real method is harmless.
    assert (await call(["data.read"], "GET", "/conversations/1", headers={"X-HTTP-Method-Override": "get"}))[0] == 200


async def test_public_paths_and_anonymous_callers() -> None:
    assert (await call(None, "GET", "/healthz"))[0] == 200
    assert (await call(None, "HEAD", "/readyz"))[0] == 200
    assert (await call(None, "POST", "/healthz"))[0] == 403  # public means GET/HEAD unless a rule says otherwise
    status, state, body = await call(None, "GET", "/agents")
    assert status == 401 and state["audit_reason"] == "missing_credentials"
    assert body["error"]["code"] == "unauthenticated"
    resp = await request(stack(None, challenge='ApiKey header="X-API-Key"'), "GET", "/agents")
    assert resp.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'


async def test_custom_route_rules_for_the_wrapped_app() -> None:
    rules = {
        "GET /reports/{id}": "report.view",
        "POST /webhook": "public",
        "GET /agents": "system.admin",
        "* /files/{rest:path}": "data.read",
    }
    assert (await call(["report.view"], "GET", "/reports/7", routes=rules))[0] == 200
    assert (await call(None, "POST", "/webhook", routes=rules))[0] == 200
    assert (await call(["agent.view"], "GET", "/agents", routes=rules))[0] == 403  # config overrides the default
    assert (await call(["data.read"], "PUT", "/files/a/b", routes=rules))[0] == 200
    assert (await call(["data.read"], "OPTIONS", "/files/a/b", routes=rules))[0] == 403
    only_custom = {"routes": rules, "endpoint_routes": False, "public_paths": ()}
    assert (await call(["agent.view", "system.admin"], "GET", "/tools", **only_custom))[0] == 403
    assert (await call(None, "GET", "/healthz", **only_custom))[0] == 403


async def test_lifespan_passes_and_websockets_need_a_rule() -> None:
    seen = []

    async def inner(scope: dict, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    mw = AuthorizationMiddleware(inner, routes={"WEBSOCKET /ws": "agent.execute"})
    await mw({"type": "lifespan"}, None, None)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    base = {"type": "websocket", "raw_path": b"/ws", "path": "/ws", "headers": [], "tframex": {}}
    await mw({**base, "user": principal([]), "auth": AuthCredentials([])}, None, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    await mw(
        {
            **base,
            "path": "/other",
            "raw_path": b"/other",
            "user": principal(["agent.execute"]),
            "auth": AuthCredentials(["agent.execute"]),
        },
        None,
        send,
    )
    assert len(sent) == 2
    await mw({**base, "user": principal(["agent.execute"]), "auth": AuthCredentials(["agent.execute"])}, None, send)
    assert seen == ["lifespan", "websocket"]
