"""Path normalisation and the route table: tricks are rejected, and whatever passes is checked
against the same route Starlette would actually run."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.routing import Match, Route

from tframex_asgi.paths import RouteTable, normalize_path, parse_rule
from tframex_asgi.rbac.layer import build_route_table
from tframex_asgi.rbac.permissions import ENDPOINT_ROUTES


def uvicorn_scope(raw: bytes, method: str = "GET", root_path: str = "") -> dict:
    """What uvicorn hands the app: ``path`` is the percent-decoded ``raw_path``."""
    return {
        "type": "http",
        "method": method,
        "raw_path": raw,
        "path": unquote(raw.decode("ascii")),
        "root_path": root_path,
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/agents", "/agents"),
        (b"/agents/", "/agents"),  # one trailing slash: same route
        (b"/", "/"),
        (b"/agents/calc%20ulator/run", "/agents/calc ulator/run"),
        (b"/agents/a%2eb/run", "/agents/a.b/run"),  # an encoded dot inside a name is harmless
        (b"//admin/users", None),
        (b"/agents//run", None),
        (b"/agents/../admin/users", None),
        (b"/agents/./x", None),
        (b"/agents/%2e%2e/admin/users", None),
        (b"/agents/%2E%2E/admin/users", None),
        (b"/agents/.%2e/admin/users", None),
        (b"/admin%2Fusers", None),
        (b"/admin%2fusers", None),
        (b"/admin%5cusers", None),
        (b"/admin\\users", None),
        (b"/agents;jsessionid=1", None),
        (b"/agents%3Bx", None),
        (b"/agents%252e%252e", None),  # double encoding
        (b"/agents%00", None),
        (b"/agents%0a", None),
        (b"/agents%3Fx", None),
        (b"/agents%23x", None),
        (b"/agents/%ff", None),  # not UTF-8
        (b"/agents//", None),
    ],
)
def test_normalize_rejects_what_can_be_read_two_ways(raw: bytes, expected: str | None) -> None:
    assert normalize_path(uvicorn_scope(raw)) == expected


def test_path_and_raw_path_must_agree() -> None:
    # A server (or an inner layer) that decoded differently from raw_path: refuse, do not guess.
    assert normalize_path({"path": "/agents", "raw_path": b"/admin/users"}) is None
    assert normalize_path({"path": "/agents/%2e%2e/admin", "raw_path": b"/agents/%2e%2e/admin"}) is None
    assert normalize_path({"path": "/agents"}) == "/agents"  # raw_path is optional in ASGI
    assert normalize_path({"path": "agents"}) is None
    assert normalize_path({"path": "*", "raw_path": b"*"}) is None
    assert normalize_path({"path": "/a", "raw_path": "/a"}) is None  # raw_path must be bytes
    assert normalize_path({"path": "/x" * 5000}) is None


def test_root_path_is_stripped_like_starlette() -> None:
    both = {"path": "/api/agents", "raw_path": b"/api/agents", "root_path": "/api"}
    assert normalize_path(both) == "/agents"
    old_style = {"path": "/agents", "raw_path": b"/api/agents", "root_path": "/api"}
    assert normalize_path(old_style) == "/agents"


def test_route_table_precedence_case_and_methods() -> None:
    table = RouteTable(
        {"GET /{a}/{b}": "low", "GET /admin/users": "high", "* /files/{p:path}": "files", "GET /items/{id:int}": "int"}
    )
    assert table.match("GET", "/admin/users") == ("/admin/users", "high")
    assert table.match("GET", "/ADMIN/Users") == ("/admin/users", "high")  # case variants need the same permission
    assert table.match("GET", "/x/y") == ("/{a}/{b}", "low")
    assert table.match("HEAD", "/admin/users") == ("/admin/users", "high")
    assert table.match("OPTIONS", "/admin/users") is None
    assert table.match("get", "/admin/users") is None
    assert table.match("DELETE", "/files/a/b/c") == ("/files/{p:path}", "files")
    assert table.match("OPTIONS", "/files/a") is None  # '*' never implies OPTIONS
    assert table.match("GET", "/items/12") == ("/items/{id:int}", "int")
    assert table.match("GET", "/items/x") == ("/{a}/{b}", "low")
    with pytest.raises(ValueError, match="duplicate"):
        table.add("GET /{c}/{d}", "again")
    for bad in ("get /x", "GET x", "GET /a/../b", "GET /{p:path}/x", "GET /a b c"):
        with pytest.raises(ValueError):
            RouteTable({bad: "v"})
    assert parse_rule("/x") == ("*", "/x")


# -- property: what we authorize is what Starlette runs ---------------------------------------

TABLE = build_route_table(public_paths=("/healthz", "/readyz"))
ROUTES = [
    (Route(template, lambda r: None, methods=[method]), template)
    for method, template in (parse_rule(rule) for rule in ENDPOINT_ROUTES)
]
PIECES = [
    "agents",
    "AGENTS",
    "admin",
    "users",
    "roles",
    "api-keys",
    "run",
    "tools",
    "call",
    "flows",
    "conversations",
    "v1",
    "chat",
    "completions",
    "metrics",
    "audit",
    "healthz",
    "x",
    "..",
    ".",
    "",
    "%2e%2e",
    "%2E",
    ".%2e",
    "%2f",
    "%2F",
    "%5c",
    ";p=1",
    "%3b",
    "%25",
    "%252e",
    "%20",
    "a%2eb",
    "%c3%a9",
    "~",
    "users%2froles",
]
METHODS = ["GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS", "get", "TRACE", "FOO"]


def starlette_template(scope: dict) -> str | None:
    """The template whose handler Starlette would run for ``scope`` (None: 404/405/redirect)."""
    for route, template in ROUTES:
        match, _ = route.matches(dict(scope, type="http"))
        if match == Match.FULL:
            return template
    return None


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=0, max_size=5), st.sampled_from(METHODS), st.booleans())
def test_no_path_trick_reaches_a_handler_under_another_permission(pieces: list[str], method: str, slash: bool) -> None:
    raw = ("/" + "/".join(pieces) + ("/" if slash else "")).encode()
    scope = uvicorn_scope(raw, method)
    normalized = normalize_path(scope)
    if normalized is None:
        return  # rejected with 400: nothing runs
    assert "//" not in normalized and "/./" not in normalized + "/" and "/../" not in normalized + "/"
    ours = TABLE.match(method, normalized)
    theirs = starlette_template(scope)
    if theirs is not None:
        # Starlette will run the handler of `theirs`: we must have checked exactly its rule.
        assert ours is not None, (raw, method)
        assert ours[0] == theirs, (raw, method, ours, theirs)
    assert normalize_path({"path": normalized, "raw_path": normalized.encode()}) in (normalized, None)
