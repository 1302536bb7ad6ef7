"""Helpers for the audit tests: an in-memory sink, fake principals and a tiny guarded app."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tframex_asgi.context import get_state
from tframex_asgi.types import Receive, Scope, Send

SECRETS = (
    "s3cr3t-api-key-value",
    "hunter2-password",
    "session-cookie-value",
    "query-token-value",
    "bearer-token-value",
    "basic-cred-value",
)


class ListSink:
    """Stands in for the WriteQueue: keeps (table, row) in submit order."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []
        self.flushes = 0

    def submit(self, table: str, row: dict[str, Any]) -> None:
        self.rows.append((table, row))

    async def flush(self) -> None:
        self.flushes += 1

    def table(self, name: str) -> list[dict[str, Any]]:
        return [r for t, r in self.rows if t == name]

    def dump(self) -> str:
        return json.dumps([r for _, r in self.rows], default=str)


@dataclass(frozen=True)
class FakePrincipal:
    id: str
    username: str
    roles: frozenset[str] = field(default_factory=frozenset)
    permissions: frozenset[str] = field(default_factory=frozenset)
    auth_method: str = "api_key"
    api_key_id: str | None = None
    external: bool = False

    @property
    def is_authenticated(self) -> bool:
        return True


ALICE = FakePrincipal("6f1c1f5e-1d5e-4c1b-9a55-0d7f3e1e2a10", "alice")


async def guarded_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Plays authentication/rate limit/authorization and the endpoint: the status is in the path."""
    state = get_state(scope)
    path = scope["path"]
    body = b""
    while True:  # the app (not the audit layer) reads the body
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    reasons = {
        "/401": (401, "invalid_token"),
        "/403": (403, "forbidden"),
        "/429": (429, "rate_limited"),
        "/413": (413, "payload_too_large"),
    }
    if path == "/boom":
        raise RuntimeError("boom")
    if path in reasons:
        status, reason = reasons[path]
        state["audit_reason"] = reason
    else:
        status = 200
        state["principal"] = ALICE
        scope["user"] = ALICE
        state["route"] = "/items/{name}" if path.startswith("/items/") else path
    if path == "/app403":
        status = 403  # the app itself refusing, without a reason
    payload = json.dumps({"ok": status == 200, "echo_len": len(body)}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload[:5], "more_body": True})
    await send({"type": "http.response.body", "body": payload[5:]})


@pytest.fixture
def sink() -> ListSink:
    return ListSink()
