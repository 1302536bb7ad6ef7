"""Secrets are redacted by shape in every audited text column, wherever they sit in the text
(``User-Agent: bot/1.0 Bearer <JWT>``), and the redaction is paid once per request shape."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tframex_asgi.audit import redact
from tframex_asgi.audit.redact import REDACTED, Redactor, scrub
from tframex_asgi.auth.store import get_identity_store
from tframex_asgi.rbac.engine import get_rbac
from tframex_asgi.stack import build_stack

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMH0"
    ".Zm9yZ2VkLXNpZ25hdHVyZS1zaG91bGQtbm90LWJlLXN0b3JlZA"
)
BASIC = base64.b64encode(b"alice:correct horse battery").decode()
HEX = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
B64 = "q8Xz3LmN0pRt7VwY2aBcDeFgHiJkLmNoPqRsTuVw"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"bot/1.0 Bearer {JWT}", f"bot/1.0 Bearer {REDACTED}"),
        (f"agent ({JWT})", f"agent ({REDACTED})"),
        (f"curl/8 Basic {BASIC}", f"curl/8 Basic {REDACTED}"),
        ("Basic authentication required", "Basic authentication required"),
        (f"key=tfx_0123456789ab_{'Ab1-_' * 8}xyz", f"key=tfx_0123456789ab_{REDACTED}"),
        ("key id tfx_0123456789ab", "key id tfx_0123456789ab"),  # the public key id stays
        (f"sig {HEX}", f"sig {REDACTED}"),
        (f"x {B64} y", f"x {REDACTED} y"),
        (f"/reset/{B64}", f"/reset/{REDACTED}"),
        ("/conversations/3f2a0c1e-1234-4abc-8def-0123456789ab", "/conversations/3f2a0c1e-1234-4abc-8def-0123456789ab"),
        ("/v1/chat/completions", "/v1/chat/completions"),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        ),
        ("a_very_long_agent_name_without_any_digits_in_it", "a_very_long_agent_name_without_any_digits_in_it"),
        ("order 123456789012345678901234567890123456", "order 123456789012345678901234567890123456"),
    ],
)
def test_scrub_redacts_credential_shapes_inside_text(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_text_json_and_query_values_are_scrubbed() -> None:
    r = Redactor()
    assert r.sanitize({"note": f"see {JWT}"}) == {"note": f"see {REDACTED}"}
    assert r.mask([f"ua Bearer {JWT}"]) == [f"ua Bearer {REDACTED}"]
    assert HEX not in r.query(f"page=2&note=x%20{HEX}")


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def _stack(db: Path) -> Any:
    app = Starlette(routes=[Route("/hello/{name}", hello)])
    return build_stack(
        app,
        {
            "persistence": {"enabled": True, "connection_string": f"sqlite:///{db}"},
            "security": {
                "auth_providers": ["api_key"],
                "rbac": {"routes": {"GET /hello/{name}": "agent.view"}},
                "audit": {"level": "full"},
            },
        },
    )


async def test_secrets_in_headers_path_and_query_never_reach_audit_rows(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    stack = _stack(db)
    async with stack:
        identity = get_identity_store(stack.services)
        user = await identity.create_user("alice")
        await get_rbac(stack.services).grant(str(user["id"]), "admin")
        _, key = await identity.create_api_key(str(user["id"]))
        transport = httpx.ASGITransport(app=stack, client=("192.0.2.9", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            ok = await c.get("/hello/x", headers={"x-api-key": key, "user-agent": f"bot/1.0 Bearer {JWT}"})
            assert ok.status_code == 200
            denied = await c.get(
                f"/hello/{B64}",
                params={"note": f"sig {HEX}"},
                headers={"user-agent": f"curl/8 Basic {BASIC} also {key}"},
            )
            assert denied.status_code == 401
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        audit = [dict(r) for r in conn.execute("SELECT * FROM audit_logs")]
        events = [dict(r) for r in conn.execute("SELECT * FROM events")]
    dump = repr(audit) + repr(events)
    secret_part = key[17:]
    for secret in (JWT, JWT.split(".")[2], BASIC, HEX, B64, secret_part):
        assert secret not in dump
    agents = {r["user_agent"] for r in audit if r["user_agent"]}
    assert f"bot/1.0 Bearer {REDACTED}" in agents
    assert f"curl/8 Basic {REDACTED} also {key[:16]}_{REDACTED}" in agents
    assert any(r["resource_id"] == f"/hello/{REDACTED}" for r in audit)
    assert events, "the 401 gives a security event, with the same redacted context"


async def test_redaction_by_shape_runs_once_per_request_shape(tmp_path: Path, monkeypatch: Any) -> None:
    calls = []
    real = redact.scrub

    def counting(text: str) -> str:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(redact, "scrub", counting)
    stack = _stack(tmp_path / "audit.db")
    async with stack:
        identity = get_identity_store(stack.services)
        user = await identity.create_user("alice")
        await get_rbac(stack.services).grant(str(user["id"]), "admin")
        _, key = await identity.create_api_key(str(user["id"]))
        transport = httpx.ASGITransport(app=stack)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            headers = {"x-api-key": key, "user-agent": f"bot/1.0 Bearer {JWT}"}
            assert (await c.get("/hello/x", headers=headers)).status_code == 200
            await stack.services.audit.flush()
            first = len(calls)
            assert first > 0
            for _ in range(30):
                assert (await c.get("/hello/x", headers=headers)).status_code == 200
            await stack.services.audit.flush()
    # Thirty more rows of the same shape cost no further scan (the row itself is still written).
    assert len(calls) == first


async def test_a_credential_sent_as_request_id_is_replaced_not_stored(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    stack = _stack(db)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"  # a W3C trace id: kept, it is an id
    async with stack:
        transport = httpx.ASGITransport(app=stack)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            forged = await c.get("/hello/x", headers={"x-request-id": JWT})
            kept = await c.get("/hello/x", headers={"x-request-id": trace_id})
            keyed = await c.get("/hello/x", headers={"x-request-id": f"tfx_0123456789ab_{B64}"})
    assert forged.status_code == kept.status_code == keyed.status_code == 401
    assert forged.headers["x-request-id"] != JWT and len(forged.headers["x-request-id"]) == 32
    assert keyed.headers["x-request-id"].startswith("tfx_") is False
    assert kept.headers["x-request-id"] == trace_id
    with sqlite3.connect(db) as conn:
        ids = {row[0] for row in conn.execute("SELECT request_id FROM audit_logs")}
    assert trace_id in ids and not any(JWT in (i or "") or B64 in (i or "") for i in ids)


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@settings(max_examples=200, deadline=None)
@given(
    before=st.text(st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=40),
    after=st.text(st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=40),
    secret=st.text(st.sampled_from(_B64URL), min_size=43, max_size=43),
    kind=st.sampled_from(["jwt", "key", "bearer"]),
)
def test_an_embedded_credential_never_survives(before: str, after: str, secret: str, kind: str) -> None:
    token = {
        "jwt": f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.{secret}",
        "key": f"tfx_0123456789ab_{secret}",
        "bearer": f"Bearer {secret}",
    }[kind]
    out = Redactor().text(f"{before} {token} {after}")
    assert secret not in out
