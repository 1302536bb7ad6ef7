"""Stack composition: layer order, no layers for disabled features, lifespan, ASGI2/WSGI apps."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.asgi_harness import Lifespan, request
from tframex_asgi import EnterpriseConfig, EnterpriseMiddleware, Services, build_stack
from tframex_asgi.errors import ConfigError

OPEN = {"enable_security": False}


async def hello(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError(f"this app does not support {scope['type']}")  # no lifespan support
    body = f"{scope['tframex'].request_id}|{scope['tframex']['client_ip']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def test_disabled_features_add_no_layer() -> None:
    stack = build_stack(hello, **OPEN)
    assert stack.layers == ("context",)


async def test_every_feature_off_and_no_request_id_header_adds_no_layer() -> None:
    """The disabled stack: the app is called as it is, with the scope it was given."""
    seen: list[dict] = []

    async def app(scope, receive, send):
        seen.append(dict(scope))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    stack = build_stack(app, **OPEN, server_config={"request_id_header": None})
    assert stack.layers == ()
    assert stack.app is stack.inner
    async with stack:
        resp = await request(stack, "GET", "/", headers={"X-Request-ID": "abc-123"})
    assert resp.status == 204 and "x-request-id" not in resp.headers
    assert "tframex" not in seen[0]


async def test_null_request_id_header_with_security_on_keeps_ids_but_sends_none() -> None:
    async def app(scope, receive, send):
        body = scope["tframex"].request_id.encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    stack = build_stack(
        app,
        server_config={"request_id_header": None},
        security_config={"public_paths": ["/"], "rbac": {"enabled": False}, "audit": {"level": "off"}},
    )
    assert stack.layers[0] == "context"
    async with stack:
        resp = await request(stack, "GET", "/", headers={"X-Request-ID": "client-chosen"})
    assert resp.status == 200 and "x-request-id" not in resp.headers
    assert len(resp.body) == 32 and resp.body != b"client-chosen"  # a fresh id: no header is read


async def test_request_id_generated_echoed_and_sanitised() -> None:
    stack = build_stack(hello, **OPEN)
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as client:
        given = await client.get("/", headers={"X-Request-ID": "abc-123"})
        assert given.headers["x-request-id"] == "abc-123"
        assert given.text.startswith("abc-123|")
        fresh = await client.get("/")
        assert len(fresh.headers["x-request-id"]) == 32
        hostile = await client.get("/", headers={"X-Request-ID": "bad id\twith spaces"})
        assert hostile.headers["x-request-id"] != "bad id\twith spaces"
        assert len(hostile.headers["x-request-id"]) == 32


async def test_forwarded_for_only_from_trusted_proxies() -> None:
    cfg = EnterpriseConfig.from_kwargs(enable_security=False)
    trusting = build_stack(
        hello, EnterpriseConfig(security=cfg.security.__class__(enabled=False, trusted_proxies=("10.0.0.0/8",)))
    )
    async with trusting:
        via_proxy = await request(
            trusting, "GET", "/", headers={"X-Forwarded-For": "203.0.113.9, 10.1.1.1"}, client="10.0.0.2"
        )
        assert via_proxy.body.decode().endswith("|203.0.113.9")
        direct = await request(trusting, "GET", "/", headers={"X-Forwarded-For": "203.0.113.9"}, client="198.51.100.7")
        assert direct.body.decode().endswith("|198.51.100.7")  # spoofed header from an untrusted peer
        garbled = await request(trusting, "GET", "/", headers={"X-Forwarded-For": "not-an-ip"}, client="10.0.0.2")
        assert garbled.body.decode().endswith("|10.0.0.2")


async def test_unhandled_error_becomes_json_500_with_request_id() -> None:
    async def broken(scope, receive, send):
        raise ValueError("secret internals")

    stack = build_stack(broken, **OPEN)
    async with stack:
        resp = await request(stack, "GET", "/x", headers={"X-Request-ID": "req-1"})
    assert resp.status == 500
    assert resp.json() == {"error": {"code": "internal_error", "message": "internal error (request id req-1)"}}
    assert "secret" not in resp.body.decode()


async def test_lifespan_runs_our_services_and_the_apps_own() -> None:
    events: list[str] = []
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        events.append("app-start")
        yield
        events.append("app-stop")

    inner = Starlette(routes=[Route("/", lambda r: PlainTextResponse("ok"))], lifespan=lifespan)
    services = Services(EnterpriseConfig.from_kwargs(enable_security=False))

    async def started() -> None:
        events.append("ours-start")

    async def stopped() -> None:
        events.append("ours-stop")

    services.on_startup(started)
    services.on_shutdown(stopped)
    stack = build_stack(inner, services=services)
    life = Lifespan(stack)
    assert (await life.startup())["type"] == "lifespan.startup.complete"
    assert (await request(stack, "GET", "/")).body == b"ok"
    assert (await life.shutdown())["type"] == "lifespan.shutdown.complete"
    assert events == ["ours-start", "app-start", "app-stop", "ours-stop"]


async def test_lifespan_when_the_app_does_not_support_it() -> None:
    stack = build_stack(hello, **OPEN)
    life = Lifespan(stack)
    assert (await life.startup())["type"] == "lifespan.startup.complete"
    assert (await request(stack, "GET", "/")).status == 200
    assert (await life.shutdown())["type"] == "lifespan.shutdown.complete"


async def test_inner_startup_failure_fails_startup_and_stops_our_services() -> None:
    stopped: list[bool] = []

    async def failing(scope, receive, send):
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "db missing"})

    services = Services(EnterpriseConfig.from_kwargs(enable_security=False))

    async def stop() -> None:
        stopped.append(True)

    services.on_shutdown(stop)
    life = Lifespan(build_stack(failing, services=services))
    answer = await life.startup()
    assert answer == {"type": "lifespan.startup.failed", "message": "db missing"}
    assert stopped == [True]


async def test_services_start_lazily_without_lifespan() -> None:
    calls: list[int] = []
    services = Services(EnterpriseConfig.from_kwargs(enable_security=False))

    async def start() -> None:
        calls.append(1)

    services.on_startup(start)
    stack = build_stack(hello, services=services)
    await request(stack, "GET", "/")
    await request(stack, "GET", "/")
    assert calls == [1]
    await stack.shutdown()


def asgi2_app(scope):
    async def instance(receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"asgi2:" + scope["tframex"].request_id.encode()})

    return instance


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi:" + environ["PATH_INFO"].encode()]


@pytest.mark.parametrize(("app", "prefix"), [(asgi2_app, b"asgi2:"), (wsgi_app, b"wsgi:/w")])
async def test_legacy_interfaces_are_wrapped(app, prefix) -> None:
    stack = build_stack(app, **OPEN)
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as client:
        resp = await client.get("/w")
    assert resp.status_code == 200
    assert resp.content.startswith(prefix)
    assert "x-request-id" in resp.headers


async def test_starlette_add_middleware() -> None:
    app = Starlette(routes=[Route("/", lambda r: PlainTextResponse(r.scope["tframex"].request_id))])
    app.add_middleware(EnterpriseMiddleware, enable_security=False)
    life = Lifespan(app)
    assert (await life.startup())["type"] == "lifespan.startup.complete"
    resp = await request(app, "GET", "/", headers={"X-Request-ID": "via-starlette"})
    assert resp.body == b"via-starlette"
    await life.shutdown()


def test_config_and_settings_are_exclusive() -> None:
    with pytest.raises(TypeError):
        build_stack(hello, EnterpriseConfig(), enable_security=False)
    with pytest.raises(ConfigError):
        build_stack(hello, {"metrics": {"nope": 1}})


async def test_generated_request_ids_are_time_ordered_hex_and_unique(monkeypatch: pytest.MonkeyPatch) -> None:
    from tframex_asgi import ids as ids_module
    from tframex_asgi.context import new_request_id

    # An injected clock (the wall clock may step back under NTP): one millisecond per id.
    clock = iter(range(1_700_000_000_000_000_000, 1 << 64, 1_000_000))
    monkeypatch.setattr(ids_module, "_time_ns", lambda: next(clock))
    ids = [new_request_id() for _ in range(5000)]  # many refills of the pool
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 and i == i.lower() for i in ids)
    # The time in ms first (so the audit index on request ids grows at its end), then no
    # counter: the random digits after it differ beyond chance.
    assert [int(i[:12], 16) for i in ids] == list(range(1_700_000_000_000, 1_700_000_005_000))
    assert len({i[12:20] for i in ids}) > 4900
    stack = build_stack(hello, **OPEN)
    async with stack:
        seen = {(await request(stack, "GET", "/")).headers["x-request-id"] for _ in range(50)}
    assert len(seen) == 50


async def test_forwarded_for_is_ignored_without_trusted_proxies() -> None:
    stack = build_stack(hello, **OPEN)
    async with stack:
        resp = await request(stack, "GET", "/", headers={"X-Forwarded-For": "203.0.113.9"}, client="198.51.100.7")
    assert resp.body.decode().endswith("|198.51.100.7")


async def test_started_stack_still_runs_lifespan() -> None:
    stack = build_stack(hello, **OPEN)
    await stack.startup()  # the hot path is taken only for http/websocket scopes
    life = Lifespan(stack)
    assert (await life.startup())["type"] == "lifespan.startup.complete"
    assert (await life.shutdown())["type"] == "lifespan.shutdown.complete"


async def test_the_apps_own_request_id_header_is_replaced_whatever_its_case() -> None:
    async def app(scope, receive, send):
        headers = [(b"X-Request-ID", b"app-1"), (b"x-request-id", b"app-2"), (b"x-request-ix", b"kept")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    stack = build_stack(app, **OPEN)
    async with stack:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "raw_path": b"/",
            "headers": [(b"x-request-id", b"mine")],
            "client": ("127.0.0.1", 1),
        }
        await stack(scope, receive, send)
    raw = sent[0]["headers"]
    assert [v for k, v in raw if k.lower() == b"x-request-id"] == [b"mine"]
    assert (b"x-request-ix", b"kept") in raw


def test_parts_for_the_services_go_to_services_not_beside_them() -> None:
    from tframex_asgi.config import EnterpriseConfig
    from tframex_asgi.services import Services
    from tframex_asgi.stack import EnterpriseStack

    services = Services(EnterpriseConfig.from_kwargs(enable_security=False))
    with pytest.raises(TypeError, match="Services"):
        EnterpriseStack(lambda *a: None, services=services, tracer_provider=object())


async def test_a_part_built_by_a_startup_hook_is_started_too() -> None:
    from tframex_asgi.config import EnterpriseConfig
    from tframex_asgi.services import Services

    services = Services(EnterpriseConfig.from_kwargs(enable_security=False))
    order: list[str] = []

    async def late() -> None:
        order.append("late")

    async def builds_a_part() -> None:
        order.append("first")
        services.on_startup(late)  # as a builder does when a hook asks for a part

    services.on_startup(builds_a_part)
    await services.startup()
    await services.shutdown()
    assert order == ["first", "late"]
