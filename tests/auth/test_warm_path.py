"""The warm path: a credential already verified in a cache skips the brute-force lookup only when
the guard says the address is not suspect; everything else is checked before any credential."""

from __future__ import annotations

import base64

from tframex_asgi.config.ratelimit import RateLimitConfig
from tframex_asgi.ratelimit import AuthFailureGuard, open_backend


def basic(user: str, pw: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


class Guard:
    """A guard with the optional ``suspect`` capability, recording what the layer asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.block: float | None = None
        self.suspicious = False

    def suspect(self, ip):
        self.asked.append("suspect")
        return self.suspicious

    async def blocked(self, ip):
        self.asked.append("blocked")
        return self.block

    async def record_failure(self, ip):
        self.asked.append("failure")


async def test_cached_key_skips_the_lookup_unless_suspect(env_factory) -> None:
    guard = Guard()
    env = await env_factory(extras={"auth_failures": guard})
    user = await env.user()
    _, key = await env.store.create_api_key(user["id"])
    assert (await env.get("/x", **{"X-API-Key": key})).status_code == 200
    assert guard.asked == ["blocked"]  # cold: checked before the store was read
    guard.asked.clear()
    assert (await env.get("/x", **{"X-API-Key": key})).status_code == 200
    assert guard.asked == ["suspect"]
    guard.asked.clear()
    guard.suspicious, guard.block = True, 7.0
    resp = await env.get("/x", **{"X-API-Key": key})
    assert resp.status_code == 429 and resp.headers["retry-after"] == "7"
    assert guard.asked == ["suspect", "blocked"]


async def test_blocked_address_is_refused_before_any_password_check(env_factory) -> None:
    guard = Guard()
    guard.block = 30.0
    env = await env_factory(extras={"auth_failures": guard})
    await env.user(password="pw")
    verified = 0
    original = env.store.hasher.verify

    async def counting(*a):
        nonlocal verified
        verified += 1
        return await original(*a)

    env.store.hasher.verify = counting
    for header in (basic("alice", "pw"), basic("alice", "guess")):
        assert (await env.get("/x", Authorization=header)).status_code == 429
    assert verified == 0 and "suspect" not in guard.asked  # nothing cached: no warm path


async def test_cached_basic_credential_needs_no_argon2_and_no_lookup(env_factory) -> None:
    guard = Guard()
    env = await env_factory(extras={"auth_failures": guard})
    await env.user(password="pw")
    assert (await env.get("/x", Authorization=basic("alice", "pw"))).status_code == 200
    guard.asked.clear()
    resp = await env.get("/x", Authorization=basic("alice", "pw"))
    assert resp.status_code == 200 and resp.json()["method"] == "basic"
    assert guard.asked == ["suspect"]


async def test_memory_guard_still_blocks_a_cached_key_after_failures(env_factory) -> None:
    """With memory storage the guard knows every failure: a blocked address is refused even
    with a credential the cache holds, exactly as before the warm path existed."""
    cfg = RateLimitConfig(enabled=True, storage="memory://")
    guard = AuthFailureGuard(open_backend(cfg), "3/minute")
    env = await env_factory(extras={"auth_failures": guard})
    user = await env.user()
    _, key = await env.store.create_api_key(user["id"])
    assert (await env.get("/x", **{"X-API-Key": key})).status_code == 200
    for _ in range(3):
        assert (await env.get("/x", **{"X-API-Key": "tfx_" + "0" * 12 + "_" + "A" * 43})).status_code == 401
    resp = await env.get("/x", **{"X-API-Key": key})
    assert resp.status_code == 429 and resp.json()["error"]["code"] == "too_many_auth_failures"


async def test_expired_cached_key_takes_the_full_path(env_factory) -> None:
    from datetime import UTC, datetime, timedelta

    guard = Guard()
    env = await env_factory(extras={"auth_failures": guard})
    user = await env.user()
    soon = datetime.fromtimestamp(env.clock.time(), UTC) + timedelta(seconds=5)
    _, key = await env.store.create_api_key(user["id"], expires_at=soon)
    assert (await env.get("/x", **{"X-API-Key": key})).status_code == 200
    env.clock.advance(6)
    guard.asked.clear()
    assert (await env.get("/x", **{"X-API-Key": key})).status_code == 401
    assert guard.asked == ["blocked", "failure"]


async def test_scopes_are_sorted_and_never_shared_between_requests(env_factory) -> None:
    from tests.asgi_harness import http_scope

    env = await env_factory()
    user = await env.user(roles=("developer",))
    _, key = await env.store.create_api_key(user["id"])
    seen = []
    for _ in range(2):
        scope = http_scope("GET", "/x")
        scope["headers"] = [(b"x-api-key", key.encode())]

        async def send(message):
            pass

        await env.app(scope, None, send)
        seen.append(scope["auth"])
    assert seen[0].scopes == sorted(seen[0].scopes) and seen[0].scopes == seen[1].scopes
    assert seen[0] is not seen[1] and seen[0].scopes is not seen[1].scopes
