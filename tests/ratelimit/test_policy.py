"""Policies from config strings, client identity and header formatting."""

from __future__ import annotations

from typing import Any

from tests.ratelimit.helpers import config, principal
from tframex_asgi.ratelimit import Rules, WindowState, client_identity, parse_policies
from tframex_asgi.ratelimit.headers import rate_limit_headers, retry_after_header


def scope(path: str = "/a", method: str = "GET", user: Any = None, ip: str | None = "192.0.2.1") -> dict[str, Any]:
    s: dict[str, Any] = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "headers": []}
    s["tframex"] = {"client_ip": ip}
    if user is not None:
        s["user"] = user
    return s


def test_policy_names_are_safe_and_unique() -> None:
    (one,) = parse_policies('gold "vip"\\', "5/minute")
    assert one.name == "gold__vip__" and one.quota == 5 and one.window == 60
    names = [p.name for p in parse_policies("default", "1/second;10/minute;100/hour")]
    assert names == ["default-1s", "default-60s", "default-3600s"]


def test_header_format() -> None:
    policies = parse_policies("default", "100/minute") + parse_policies("route", "5/second")
    headers = dict(
        rate_limit_headers([(policies[0], WindowState(100, 42, 16.2, 60)), (policies[1], WindowState(5, 0, 0.0, 1))])
    )
    assert headers[b"ratelimit-policy"] == b'"default";q=100;w=60, "route";q=5;w=1'
    assert headers[b"ratelimit"] == b'"default";r=42;t=17, "route";r=0;t=0'
    assert retry_after_header(0.0) == (b"retry-after", b"1")
    assert retry_after_header(16.01) == (b"retry-after", b"17")
    assert rate_limit_headers([]) == []


def test_client_identity_order_and_fallbacks() -> None:
    keyed = principal("u1", api_key_id="k9")
    assert client_identity(scope(user=keyed), ("api_key", "user", "ip")) == "k:k9"
    assert client_identity(scope(user=keyed), ("user", "ip")) == "u:u1"
    assert client_identity(scope(user=principal("u1")), ("api_key", "ip")) == "ip:192.0.2.1"
    # Starlette's UnauthenticatedUser (public paths) counts by address.
    from starlette.authentication import UnauthenticatedUser

    assert client_identity(scope(user=UnauthenticatedUser()), ("user",)) == "ip:192.0.2.1"
    assert client_identity(scope(ip=None), ("ip",)) == "anonymous"


def test_ids_cannot_collide_through_separators() -> None:
    rules = Rules(config(routes={"/x": "1/minute"}))
    hits, _ = rules.checks(scope("/x", user=principal("a/r/b")))
    keys = [c.key for c in hits]
    assert keys[0] == ("r", "%2Fx", "u:a%2Fr%2Fb") and keys[1] == ("c", "u:a%2Fr%2Fb")


def test_tiers_ignore_unauthenticated_roles() -> None:
    rules = Rules(config(default="1/minute", tiers={"admin": "100/minute"}))

    class Fake:
        is_authenticated = False
        roles = frozenset({"admin"})

    assert rules.client_policies(Fake())[0].name == "default"
    assert rules.client_policies(principal(roles=("admin",)))[0].name == "admin"


def test_malformed_paths_match_no_route_but_still_count() -> None:
    rules = Rules(config(routes={"/x/{id}": "1/minute"}))
    s = scope("/x/../y")
    hits, tokens = rules.checks(s)
    assert [c.policy.name for c in hits] == ["default"] and tokens == []
