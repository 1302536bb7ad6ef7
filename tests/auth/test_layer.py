"""The authentication layer with API keys and Basic: 401s, identity in the scope, caches,
public paths, brute-force limiter, spoofed identity headers."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tframex_asgi.auth.layer import AuthenticationMiddleware
from tframex_asgi.auth.principal import Principal


def basic(user: str, pw: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


def challenges(resp) -> list[str]:
    return resp.headers.get_list("www-authenticate")


async def test_no_credentials_is_401_with_every_scheme(env) -> None:
    resp = await env.get("/agents")
    assert resp.status_code == 401
    assert resp.json() == {"error": {"code": "unauthenticated", "message": "authentication required"}}
    assert challenges(resp) == ['ApiKey header="X-API-Key"', 'Basic realm="tframex", charset="UTF-8"']


async def test_public_paths_pass_anonymous(env) -> None:
    body = (await env.get("/healthz")).json()
    assert body["authenticated"] is False and body["scopes"] == []
    for path in ("/healthz/", "/healthz/../agents", "/HEALTHZ", "/readyz/x"):
        assert (await env.get(path)).status_code == 401, path


async def test_api_key_sets_starlette_identity(env) -> None:
    user = await env.user(roles=("developer",))
    _, key = await env.store.create_api_key(user["id"])
    body = (await env.get("/x", **{"X-API-Key": key})).json()
    assert body["authenticated"] and body["id"] == user["id"] and body["username"] == "alice"
    assert body["method"] == "api_key" and body["principal_is_user"]
    assert body["roles"] == ["developer", "user"]  # granted + default role
    assert "agent.view" in body["scopes"] and "agent.execute" in body["scopes"]
    assert body["scopes"] == sorted(body["scopes"])


async def test_key_scopes_only_narrow(env) -> None:
    user = await env.user()  # role "user": no agent.view
    _, key = await env.store.create_api_key(user["id"], scopes=["agent.execute", "agent.view", "system.admin"])
    body = (await env.get("/x", **{"X-API-Key": key})).json()
    assert body["scopes"] == ["agent.execute"]


@pytest.mark.parametrize(
    "make_bad",
    [
        lambda k: k[:-2] + "xx",
        lambda k: k.upper(),
        lambda k: "",
        lambda k: k + k,
        lambda k: "x" * 10_000,
        lambda k: k.replace("tfx_", "TFX_"),
        lambda k: "tfx_" + "0" * 12 + "_" + "A" * 43,
    ],
)
async def test_bad_api_keys_are_401(env, make_bad) -> None:
    user = await env.user()
    _, key = await env.store.create_api_key(user["id"])
    resp = await env.get("/x", **{"X-API-Key": make_bad(key)})
    assert resp.status_code == 401
    assert resp.json()["error"] == {"code": "unauthenticated", "message": "invalid credentials"}
    assert key not in resp.text


async def test_key_in_query_string_is_ignored(env) -> None:
    user = await env.user()
    _, key = await env.store.create_api_key(user["id"])
    for query in (f"api_key={key}", f"X-API-Key={key}", f"access_token={key}"):
        assert (await env.get(f"/x?{query}")).status_code == 401


async def test_repeated_credential_headers_are_refused(env) -> None:
    user = await env.user()
    _, key = await env.store.create_api_key(user["id"])
    resp = await env.client.get("/x", headers=[("X-API-Key", key), ("X-API-Key", "tfx_attacker")])
    assert resp.status_code == 401


async def test_warm_key_needs_no_storage(env) -> None:
    user = await env.user()
    _, key = await env.store.create_api_key(user["id"])
    assert (await env.get("/x", **{"X-API-Key": key})).status_code == 200
    reads = 0
    original = env.store.storage.read

    async def counting(*args, **kwargs):
        nonlocal reads
        reads += 1
        return await original(*args, **kwargs)

    env.store.storage.read = counting
    for _ in range(5):
        assert (await env.get("/x", **{"X-API-Key": key})).status_code == 200
    assert reads == 0


async def test_revocation_applies_at_once_here_and_within_ttl_elsewhere(env) -> None:
    user = await env.user()
    row, key = await env.store.create_api_key(user["id"])
    assert (await env.get("/x", **{"X-API-Key": key})).status_code == 200
    # Another process revokes (straight in storage): seen once the cache TTL has passed.
    await env.store.storage.update("api_keys", row["id"], {"revoked_at": datetime(2020, 1, 1)})
    assert (await env.get("/x", **{"X-API-Key": key})).status_code == 200
    env.clock.advance(31)
    assert (await env.get("/x", **{"X-API-Key": key})).status_code == 401
    # Through the store: immediately.
    _, key2 = await env.store.create_api_key(user["id"])
    assert (await env.get("/x", **{"X-API-Key": key2})).status_code == 200
    await env.store.revoke_api_key((await env.store.list_api_keys(user["id"]))[0]["id"])
    assert (await env.get("/x", **{"X-API-Key": key2})).status_code == 401


async def test_cached_key_still_expires_on_time(env) -> None:
    user = await env.user()
    soon = datetime.fromtimestamp(env.clock.time(), UTC) + timedelta(seconds=5)
    _, key = await env.store.create_api_key(user["id"], expires_at=soon)
    assert (await env.get("/x", **{"X-API-Key": key})).status_code == 200
    env.clock.advance(6)  # well inside the 30 s cache TTL
    assert (await env.get("/x", **{"X-API-Key": key})).status_code == 401


async def test_disabled_user_key_refused(env) -> None:
    user = await env.user()
    _, key = await env.store.create_api_key(user["id"])
    await env.store.set_active(user["id"], False)
    assert (await env.get("/x", **{"X-API-Key": key})).status_code == 401


async def test_basic_auth(env) -> None:
    await env.user(password="s3cret pässword")
    ok = await env.get("/x", Authorization=basic("alice", "s3cret pässword"))
    assert ok.status_code == 200 and ok.json()["method"] == "basic"
    wrong = await env.get("/x", Authorization=basic("alice", "nope"))
    unknown = await env.get("/x", Authorization=basic("mallory", "nope"))
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.content == unknown.content  # indistinguishable
    assert challenges(wrong) == challenges(unknown)


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic ",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"nocolon").decode(),
        "Basic " + base64.b64encode(b":nouser").decode(),
        "Basic " + base64.b64encode(b"alice:").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + "QUFB" * 1000,
    ],
)
async def test_malformed_basic_is_401(env, header) -> None:
    await env.user()
    resp = await env.get("/x", Authorization=header)
    assert resp.status_code == 401


async def test_disabled_user_basic_refused(env) -> None:
    user = await env.user(password="pw")
    await env.store.set_active(user["id"], False)
    resp = await env.get("/x", Authorization=basic("alice", "pw"))
    assert resp.status_code == 401 and resp.json()["error"]["message"] == "invalid credentials"


async def test_basic_cache_and_invalidation_on_disable(env) -> None:
    user = await env.user(password="pw")
    assert (await env.get("/x", Authorization=basic("alice", "pw"))).status_code == 200
    calls = 0
    original = env.store.hasher.verify

    async def counting(*a):
        nonlocal calls
        calls += 1
        return await original(*a)

    env.store.hasher.verify = counting
    assert (await env.get("/x", Authorization=basic("alice", "pw"))).status_code == 200
    assert calls == 0  # cached: no argon2
    await env.store.set_active(user["id"], False)
    assert (await env.get("/x", Authorization=basic("alice", "pw"))).status_code == 401
    assert calls == 1


async def test_spoofed_identity_headers_are_ignored_and_removed(env) -> None:
    user = await env.user()
    _, key = await env.store.create_api_key(user["id"])
    spoof = {"X-User-Id": "00000000-0000-0000-0000-000000000001", "X-Role": "admin", "X-Roles": "admin"}
    assert (await env.get("/x", **spoof)).status_code == 401
    body = (await env.get("/x", **{"X-API-Key": key}, **spoof)).json()
    assert body["id"] == user["id"] and "admin" not in body["roles"]
    assert not {"x-user-id", "x-role", "x-roles"} & set(body["headers"])


async def test_require_auth_false_lets_anonymous_in_but_not_bad_credentials(env_factory) -> None:
    env = await env_factory(require_auth=False)
    assert (await env.get("/x")).json()["authenticated"] is False
    assert (await env.get("/x", **{"X-API-Key": "tfx_bad"})).status_code == 401


async def test_two_credentials_are_refused_whatever_the_order(env_factory) -> None:
    # Before: the first good credential won, so a wrong password rode along with a valid key.
    env = await env_factory({"basic": True, "api_key": True})
    user = await env.user(password="pw")
    _, key = await env.store.create_api_key(user["id"])
    for auth in (basic("alice", "pw"), basic("alice", "bad"), f"Bearer {key}", "Bearer x.y.z"):
        resp = await env.get("/x", Authorization=auth, **{"X-API-Key": key})
        assert resp.status_code == 401, auth
        assert resp.json()["error"] == {"code": "unauthenticated", "message": "invalid credentials"}
    assert (await env.get("/x", Authorization=basic("alice", "pw"))).json()["method"] == "basic"
    assert (await env.get("/x", **{"X-API-Key": key})).json()["method"] == "api_key"
    assert challenges(await env.get("/x"))[0].startswith("Basic")


class Failures:
    def __init__(self) -> None:
        self.failed: list[str | None] = []
        self.block: float | None = None

    async def blocked(self, ip):
        return self.block

    async def record_failure(self, ip):
        self.failed.append(ip)


async def test_brute_force_limiter(env_factory) -> None:
    failures = Failures()
    env = await env_factory(extras={"auth_failures": failures})
    await env.user(password="pw")
    await env.get("/x")  # no credentials: not a failure
    await env.get("/x", Authorization=basic("alice", "bad"))
    assert failures.failed == ["127.0.0.1"]
    failures.block = 12.2
    resp = await env.get("/x", Authorization=basic("alice", "pw"))
    assert resp.status_code == 429 and resp.headers["retry-after"] == "13"
    assert resp.json()["error"]["code"] == "too_many_auth_failures"


async def test_audit_reasons(env_factory) -> None:
    seen: list[str | None] = []

    async def outer(scope, receive, send):
        state = scope.setdefault("tframex", {})  # as the context layer does
        await inner(scope, receive, send)
        seen.append(state.get("audit_reason"))

    env = await env_factory()
    inner = env.app
    env.client._transport = type(env.client._transport)(outer)
    user = await env.user(password="pw")
    row, key = await env.store.create_api_key(user["id"])
    await env.get("/x")
    await env.get("/x", **{"X-API-Key": "tfx_nope"})
    await env.store.revoke_api_key(row["id"])
    await env.get("/x", **{"X-API-Key": key})
    _, key2 = await env.store.create_api_key(user["id"], expires_at=datetime(2000, 1, 1))
    await env.get("/x", **{"X-API-Key": key2})
    _, key3 = await env.store.create_api_key(user["id"])
    await env.store.set_active(user["id"], False)
    await env.get("/x", **{"X-API-Key": key3})
    await env.get("/healthz")
    assert seen == ["missing_credentials", "invalid_credentials", "revoked_key", "expired_key", "disabled_user", None]


async def test_storage_down_is_503_not_401(env) -> None:
    user = await env.user()
    _, key = await env.store.create_api_key(user["id"])
    from tframex_asgi.errors import StorageError

    async def down(*a, **k):
        raise StorageError("db down")

    env.store.storage.read = down
    resp = await env.get("/x", **{"X-API-Key": key})
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "idp_unavailable"


async def test_starlette_requires_works(env_factory) -> None:
    @requires("agent.view")
    async def view(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.user.display_name})

    app = Starlette(routes=[Route("/v", view)])
    env = await env_factory(app=app)
    dev = await env.user("dev", roles=("developer",))
    plain = await env.user("plain")
    _, dev_key = await env.store.create_api_key(dev["id"])
    _, plain_key = await env.store.create_api_key(plain["id"])
    assert (await env.get("/v", **{"X-API-Key": dev_key})).json() == {"user": "dev"}
    assert (await env.get("/v", **{"X-API-Key": plain_key})).status_code == 403


async def test_lifespan_and_other_scopes_pass_through() -> None:
    calls: list[str] = []

    async def app(scope, receive, send):
        calls.append(scope["type"])

    class Never:
        name = "api_key"

        def challenge(self):
            return b"x"

        def offered(self, creds):
            raise AssertionError("must not be asked")

    mw = AuthenticationMiddleware(app, [Never()])
    await mw({"type": "lifespan"}, None, None)
    assert calls == ["lifespan"]


async def test_websocket_without_credentials_is_closed(env) -> None:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": [], "client": ("127.0.0.1", 1)}
    await env.app(scope, None, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_principal_repr_has_no_secrets() -> None:
    p = Principal("id-1", "alice", frozenset({"user"}), frozenset({"agent.execute"}), "api_key", api_key_id="k")
    assert "alice" in repr(p) and p.is_authenticated and p.identity == "id-1" and p.display_name == "alice"


async def test_secrets_never_reach_the_logs(env_factory, caplog) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    env = await env_factory()
    user = await env.user(password="hunter2-password")
    row, key = await env.store.create_api_key(user["id"])
    await env.get("/x", **{"X-API-Key": key})
    await env.get("/x", **{"X-API-Key": key[:-3] + "abc"})
    await env.get("/x", Authorization=basic("alice", "hunter2-password"))
    await env.get("/x", Authorization=basic("alice", "wrong-password-9"))
    from tframex_asgi.errors import StorageError

    async def down(*a, **k):
        raise StorageError("db down")

    env.store.invalidate()
    env.store.storage.read = down
    await env.get("/x", **{"X-API-Key": key})
    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in (
        key,
        key.split("_", 2)[2],
        "hunter2-password",
        "wrong-password-9",
        base64.b64encode(b"alice:hunter2-password").decode(),
    ):
        assert secret not in text


@pytest.mark.parametrize("header", ["Bearer abc.def.ghi", "Negotiate abc", "Digest x", "garbage"])
async def test_unsupported_scheme_is_refused_not_missing(env_factory, header) -> None:
    failures = Failures()
    env = await env_factory(require_auth=False, extras={"auth_failures": failures})
    resp = await env.get("/x", Authorization=header)
    assert resp.status_code == 401 and resp.json()["error"]["message"] == "invalid credentials"
    assert failures.failed == ["127.0.0.1"]


async def test_fuzzed_credential_headers_never_crash(env_factory) -> None:
    import random

    from tests.asgi_harness import http_scope

    env = await env_factory(
        {"api_key": True, "basic": True, "jwt": {"enabled": True, "secret": "s" * 40, "algorithms": ["HS256"]}}
    )
    await env.user(password="pw")
    rng = random.Random(1234)
    alphabet = [bytes([b]) for b in range(256)]
    pieces = [b"Basic ", b"Bearer ", b"tfx_", b".", b"=", b":", b"eyJ", b"\x00", b"\xff", b" "]
    for _ in range(300):
        value = b"".join(rng.choice(pieces + alphabet) for _ in range(rng.randint(0, 60)))
        scope = http_scope("GET", "/x")
        scope["headers"] = [(rng.choice([b"authorization", b"x-api-key"]), value)]
        sent: list[dict] = []

        async def send(message, sent=sent):
            sent.append(message)

        await env.app(scope, None, send)
        assert sent[0]["status"] == 401, value
