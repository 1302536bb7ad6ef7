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


# -- the fast path and the per-request cache give the same answers as the full check -----------

PLAIN_CHARS = "abcXYZ019_-~.%/;\\é "


@settings(max_examples=800, deadline=None)
@given(st.text(alphabet=PLAIN_CHARS, max_size=30), st.sampled_from(["", "/api"]), st.booleans())
def test_fast_path_agrees_with_the_full_check(text: str, root: str, with_raw: bool) -> None:
    from tframex_asgi.paths import _normalize_slow

    path = root + "/" + text if root else "/" + text
    scope: dict = {"path": path, "root_path": root}
    if with_raw:
        scope["raw_path"] = path.encode()
    raw = scope.get("raw_path")
    assert normalize_path(scope) == _normalize_slow(scope, path, raw)


def test_cached_per_request_and_recomputed_when_the_path_changes() -> None:
    from tframex_asgi.context import RequestState
    from tframex_asgi.paths import STATE_KEY

    state = RequestState()
    scope = {"path": "/agents/x/run", "raw_path": b"/agents/x/run", "root_path": "", "tframex": state}
    assert normalize_path(scope) == "/agents/x/run"
    assert state[STATE_KEY][3] == "/agents/x/run"
    state[STATE_KEY] = (scope["path"], scope["raw_path"], scope["root_path"], "/from-cache")
    assert normalize_path(scope) == "/from-cache"  # same path objects: computed once per request
    # A Mount (or any inner layer) that rewrites the path gets a fresh, correct answer.
    scope["path"], scope["raw_path"] = "/agents/../admin", b"/agents/../admin"
    assert normalize_path(scope) is None
    scope["root_path"] = "/api"
    scope["path"], scope["raw_path"] = "/api/tools", b"/api/tools"
    assert normalize_path(scope) == "/tools"
    # A mutable raw_path is never cached.
    mutable = {"path": "/a", "raw_path": bytearray(b"/a"), "tframex": RequestState()}
    assert normalize_path(mutable) == "/a"
    assert STATE_KEY not in mutable["tframex"]


def test_route_table_memo_follows_added_rules() -> None:
    table = RouteTable({"GET /{a}": "param"})
    assert table.match("GET", "/admin") == ("/{a}", "param")
    assert table.match("GET", "/admin") == ("/{a}", "param")  # remembered
    table.add("GET /admin", "literal")
    assert table.match("GET", "/admin") == ("/admin", "literal")
    assert table.match("GET", "/ADMIN") == ("/admin", "literal")
    assert table.match("POST", "/admin") is None
    for i in range(5000):  # many distinct paths: the memo stays bounded, answers stay right
        assert table.match("GET", f"/p{i}") == ("/{a}", "param")
    assert len(table._memo) <= 4096
    assert table.match("GET", "/p4999") == ("/{a}", "param")
