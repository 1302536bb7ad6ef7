"""RateLimitMiddleware on in-process memory storage: status codes, headers, keys, tiers, routes, tokens."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.asgi_harness import request
from tests.ratelimit.helpers import FakeAuth, config, ok_app
from tframex_asgi.ratelimit import RateLimitMiddleware
from tframex_asgi.types import Receive, Scope, Send

STRATEGIES = ["moving-window", "fixed-window", "sliding-window-counter"]


def stack(**kwargs: Any) -> Any:
    state_seen: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        state_seen.append(scope.get("tframex", {}))
        await ok_app(scope, receive, send)

    limited = RateLimitMiddleware(app, config(**kwargs))
    wrapped = FakeAuth(limited)
    wrapped.state_seen = state_seen  # type: ignore[attr-defined]
    wrapped.limiter = limited  # type: ignore[attr-defined]
    return wrapped


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_admits_exactly_the_limit_then_429(strategy: str) -> None:
    app = stack(default="5/minute", strategy=strategy)
    statuses = [(await request(app, "GET", "/agents")).status for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3


async def test_429_has_retry_after_ietf_headers_and_json_error() -> None:
    app = stack(default="2/minute")
    for _ in range(2):
        await request(app, "GET", "/agents")
    resp = await request(app, "GET", "/agents")
    assert resp.status == 429
    assert resp.json() == {"error": {"code": "rate_limited", "message": "too many requests: retry later"}}
    retry = int(resp.headers["retry-after"])
    assert 1 <= retry <= 60
    assert resp.headers["ratelimit-policy"] == '"default";q=2;w=60'
    match = re.fullmatch(r'"default";r=0;t=(\d+)', resp.headers["ratelimit"])
    assert match and 0 <= int(match.group(1)) <= 60


async def test_success_headers_count_down() -> None:
    app = stack(default="3/minute")
    seen = []
    for _ in range(3):
        resp = await request(app, "GET", "/agents")
        assert resp.headers["ratelimit-policy"] == '"default";q=3;w=60'
        seen.append(re.fullmatch(r'"default";r=(\d+);t=(\d+)', resp.headers["ratelimit"]).group(1))  # type: ignore[union-attr]
    assert seen == ["2", "1", "0"]
    state = app.state_seen[-1]["ratelimit"]
    assert state["limit"] == 3 and state["remaining"] == 0 and state["policy"] == "default"
    assert 0 <= state["reset"] <= 60


async def test_no_headers_on_success_when_disabled() -> None:
    app = stack(default="1/minute", headers_on_success=False)
    resp = await request(app, "GET", "/agents")
    assert resp.status == 200 and "ratelimit" not in resp.headers and "ratelimit-policy" not in resp.headers
    resp = await request(app, "GET", "/agents")
    assert resp.status == 429 and resp.headers["retry-after"] and resp.headers["ratelimit"].startswith('"default";r=0')


async def test_clients_are_counted_apart_by_key_user_and_ip() -> None:
    app = stack(default="1/minute")
    assert (await request(app, "GET", "/a", client="10.0.0.1")).status == 200
    assert (await request(app, "GET", "/a", client="10.0.0.1")).status == 429
    assert (await request(app, "GET", "/a", client="10.0.0.2")).status == 200
    # Same IP, but authenticated: counted by user, then by API key.
    assert (await request(app, "GET", "/a", headers={"x-test-user": "alice"}, client="10.0.0.1")).status == 200
    assert (await request(app, "GET", "/a", headers={"x-test-user": "alice"}, client="10.0.0.9")).status == 429
    key = {"x-test-user": "alice", "x-test-key": "key-1"}
    assert (await request(app, "GET", "/a", headers=key)).status == 200
    assert (await request(app, "GET", "/a", headers=key)).status == 429


async def test_key_by_ip_only_ignores_identity() -> None:
    app = stack(default="1/minute", key_by=("ip",))
    assert (await request(app, "GET", "/a", headers={"x-test-user": "a"}, client="10.0.0.1")).status == 200
    assert (await request(app, "GET", "/a", headers={"x-test-user": "b"}, client="10.0.0.1")).status == 429


async def test_client_ip_comes_from_the_context_layer() -> None:
    """The resolved state["client_ip"] (trusted proxies applied) is used, not the socket peer."""
    from tframex_asgi.context import RequestContextMiddleware

    limited = RateLimitMiddleware(ok_app, config(default="1/minute", key_by=("ip",)))
    app = RequestContextMiddleware(limited, trusted_proxies=["10.0.0.0/8"])
    proxy = "10.1.1.1"
    assert (await request(app, "GET", "/a", headers={"x-forwarded-for": "203.0.113.5"}, client=proxy)).status == 200
    assert (await request(app, "GET", "/a", headers={"x-forwarded-for": "203.0.113.6"}, client=proxy)).status == 200
    assert (await request(app, "GET", "/a", headers={"x-forwarded-for": "203.0.113.5"}, client=proxy)).status == 429
    # From an untrusted peer the header is ignored: both count as the peer.
    hdr = {"x-forwarded-for": "198.51.100.1"}
    assert (await request(app, "GET", "/a", headers=hdr, client="192.0.2.1")).status == 200
    assert (
        await request(app, "GET", "/a", headers={"x-forwarded-for": "198.51.100.2"}, client="192.0.2.1")
    ).status == 429


async def test_most_generous_tier_among_roles_applies() -> None:
    app = stack(default="1/minute", tiers={"premium": "3/minute", "bronze": "2/minute"})
    hdr = {"x-test-user": "p", "x-test-roles": "user,bronze,premium"}
    statuses = [(await request(app, "GET", "/a", headers=hdr)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    resp = await request(app, "GET", "/a", headers={"x-test-user": "q", "x-test-roles": "premium"})
    assert resp.headers["ratelimit-policy"] == '"premium";q=3;w=60'


async def test_several_limits_in_one_string_all_apply() -> None:
    app = stack(default="2/second;3/hour")
    resp = await request(app, "GET", "/a")
    assert resp.headers["ratelimit-policy"] == '"default-1s";q=2;w=1, "default-3600s";q=3;w=3600'
    assert re.fullmatch(r'"default-1s";r=1;t=\d+, "default-3600s";r=2;t=\d+', resp.headers["ratelimit"])


async def test_route_limits_match_templates_and_methods() -> None:
    app = stack(default="100/minute", routes={"POST /agents/{name}/run": "2/minute"})
    runs = [(await request(app, "POST", f"/agents/a{i}/run")).status for i in range(3)]
    assert runs == [200, 200, 429]  # one template, whatever the agent name
    assert (await request(app, "GET", "/agents/a1/run")).status == 200  # other method
    assert (await request(app, "POST", "/agents")).status == 200
    # Counted per client: another IP has its own budget.
    assert (await request(app, "POST", "/agents/x/run", client="10.9.9.9")).status == 200
    resp = await request(app, "POST", "/agents/x/run")
    assert resp.status == 429 and resp.headers["ratelimit-policy"] == '"route";q=2;w=60'


async def test_route_rejection_does_not_spend_the_client_budget() -> None:
    app = stack(default="3/minute", routes={"/slow": "1/minute"})
    assert [(await request(app, "GET", "/slow")).status for _ in range(3)] == [200, 429, 429]
    assert [(await request(app, "GET", "/fast")).status for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize("token_strategy", STRATEGIES)
async def test_token_budget_is_charged_after_the_run(token_strategy: str) -> None:
    app = stack(default="100/minute", tokens="100/hour", token_routes=("POST /run",), token_strategy=token_strategy)
    first = await request(app, "POST", "/run", headers={"x-test-tokens": "60"})
    assert first.status == 200
    assert '"tokens";r=100' in first.headers["ratelimit"]  # tested before the run, charged after
    second = await request(app, "POST", "/run", headers={"x-test-tokens": "70"})
    assert second.status == 200 and '"tokens";r=40' in second.headers["ratelimit"]
    # 60 + 70 > 100: the budget is spent, so the next run is refused before it starts.
    third = await request(app, "POST", "/run", headers={"x-test-tokens": "1"})
    assert third.status == 429 and third.headers["ratelimit-policy"] == '"tokens";q=100;w=3600'
    # Routes that do not run an LLM are not held back by the token budget.
    assert (await request(app, "GET", "/agents")).status == 200
    assert app.limiter.stats.tokens_charged_total == 130


async def test_exempt_paths_and_other_scope_types_pass() -> None:
    app = stack(default="1/minute")
    assert [(await request(app, "GET", "/healthz")).status for _ in range(3)] == [200] * 3
    called = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope["type"])

    limited = RateLimitMiddleware(inner, config(default="1/minute"))
    for _ in range(2):
        await limited({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
        await limited({"type": "websocket", "path": "/ws", "headers": []}, None, None)  # type: ignore[arg-type]
    assert called == ["lifespan", "websocket"] * 2


async def test_stats_and_audit_reason() -> None:
    app = stack(default="1/minute")
    await request(app, "GET", "/a")
    await request(app, "GET", "/a")
    stats = app.limiter.stats
    assert stats.allowed_total == 1 and stats.rejected_total == 1
    assert len(app.state_seen) == 1  # the rejected request never reached the app


async def test_rejected_state_is_set() -> None:
    from tframex_asgi.context import RequestContextMiddleware

    states: list[dict[str, Any]] = []

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        await limited(scope, receive, send)
        states.append(dict(scope["tframex"]))

    limited = RateLimitMiddleware(ok_app, config(default="1/minute"))
    app = RequestContextMiddleware(outer)
    await request(app, "GET", "/a")
    await request(app, "GET", "/a")
    assert "audit_reason" not in states[0]
    assert states[1]["audit_reason"] == "rate_limited"
    assert states[1]["ratelimit"]["remaining"] == 0 and states[1]["ratelimit"]["policy"] == "default"


async def test_refusal_stands_when_the_storage_fails_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from tframex_asgi.ratelimit import StorageUnavailable

    app = stack(default="1/minute")
    assert (await request(app, "GET", "/a")).status == 200

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise StorageUnavailable("down")

    monkeypatch.setattr(app.limiter.backend, "window", broken)
    resp = await request(app, "GET", "/a")
    assert resp.status == 429 and resp.headers["retry-after"] == "60"
    assert resp.headers["ratelimit"] == '"default";r=0;t=60'


async def test_streamed_responses_pass_message_by_message() -> None:
    async def sse(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": f"data: {i}\n\n".encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    resp = await request(RateLimitMiddleware(sse, config(default="5/minute")), "GET", "/stream")
    assert resp.headers["content-type"] == "text/event-stream" and resp.headers["ratelimit"].startswith('"default";r=4')
    assert [c for _, c in resp.chunks] == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n", b""]
