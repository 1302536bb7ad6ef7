"""Every JSON route answers a bad body with a 400 JSON error, never a 500: one shared parser
(:mod:`tframex_asgi.jsonbody`) behind the endpoint, the OpenAI route and the admin API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.rbac.conftest import SECURE, client
from tframex_asgi import build_stack
from tframex_asgi.admin.bootstrap import bootstrap_admin
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint
from tframex_asgi.jsonbody import MAX_DEPTH, parse_json_object

ADMIN_ID = "00000000-0000-0000-0000-000000000001"
ROUTES = [
    ("POST", "/agents/assistant/run"),
    ("POST", "/tools/add/call"),
    ("POST", "/flows/echo_then_shout/run"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/admin/users"),
    ("PATCH", f"/admin/users/{ADMIN_ID}"),
    ("POST", f"/admin/users/{ADMIN_ID}/roles"),
    ("POST", "/admin/roles"),
    ("POST", "/admin/api-keys"),
]


def nested(depth: int) -> bytes:
    return b'{"input": "x", "arguments": ' + b"[" * depth + b"]" * depth + b"}"


BAD_BODIES = [
    (b"[" * 100_000, "nests deeper than"),  # RecursionError in json.loads before the shared parser
    (b'{"a":' * 100_000, "nests deeper than"),
    (nested(MAX_DEPTH + 1), "nests deeper than"),
    (b'{"input": NaN}', "NaN is not a JSON value"),
    (b'{"input": -Infinity}', "-Infinity is not a JSON value"),
    (b"[1, 2]", "must be a JSON object, not an array"),
    (b'"hello"', "must be a JSON object, not a string"),
    (b"null", "must be a JSON object, not null"),
    (b'{"input": "x"', "not valid JSON"),
    (b'{"input": "\xff"}', "not valid UTF-8"),
    # Text no database here can store (tests/test_unstorable_text.py covers what is written).
    (b'{"input": "a\\u0000b"}', "'input' contains a NUL character (U+0000), which cannot be stored"),
    (b'{"input": "a\\udc00b"}', "'input' contains a lone surrogate (U+DC00)"),
]


@pytest.fixture
async def http() -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    stack = build_stack(TFrameXEndpoint(build_demo_app()), **SECURE)
    async with stack, client(stack) as c:
        created = await bootstrap_admin(stack.services)
        assert created is not None
        yield c, {"X-API-Key": created[1], "Content-Type": "application/json"}


IDS = ["100k-brackets", "100k-objects", "one-too-deep", "nan", "infinity"]
IDS += ["array", "string", "null", "truncated", "utf8", "nul", "surrogate"]


@pytest.mark.parametrize(("raw", "says"), BAD_BODIES, ids=IDS)
async def test_every_json_route_answers_bad_bodies_with_400(
    http: tuple[httpx.AsyncClient, dict[str, str]], raw: bytes, says: str
) -> None:
    c, headers = http
    for method, path in ROUTES:
        resp = await c.request(method, path, content=raw, headers=headers)
        assert resp.status_code == 400, (method, path, resp.status_code, resp.text[:200])
        error = resp.json()["error"]
        assert error["code"] == "invalid_request" and says in error["message"], (path, error)


async def test_deep_but_allowed_nesting_reaches_the_handler(http: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    c, headers = http
    # MAX_DEPTH levels in all (the object itself is one): parsed, then judged by the route.
    depth = MAX_DEPTH - 1
    body = b'{"arguments": {"a": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b', "b": 1}}'
    resp = await c.post("/tools/add/call", content=body, headers=headers)
    # Parsed (not "nested too deep"): the route judges it, and its arguments check names the argument.
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["message"] == "tool 'add': argument 'a' must be number, got array"
    ok = await c.post("/agents/assistant/run", json={"input": "hello"}, headers=headers)
    assert ok.status_code == 200 and ok.json()["output"] == "Echo: hello"


def test_parser_counts_depth_exactly() -> None:
    def objects(n: int) -> bytes:
        return b'{"k":' * (n - 1) + b"{}" + b"}" * (n - 1)

    assert parse_json_object(objects(MAX_DEPTH))
    with pytest.raises(ValueError, match="nests deeper"):
        parse_json_object(objects(MAX_DEPTH + 1))
    # Many brackets side by side are not depth: a wide body passes.
    wide: dict[str, Any] = parse_json_object(b'{"rows": [' + b",".join([b"[[]]"] * 5000) + b"]}")
    assert len(wide["rows"]) == 5000
    assert parse_json_object(b"") == {}
