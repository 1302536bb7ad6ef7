"""GET /audit: filters, paging, time windows, validation, and no secrets in the JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.authentication import AuthCredentials
from starlette.routing import Router

from tests.audit.conftest import ALICE
from tframex_asgi.audit.logger import AuditLogger
from tframex_asgi.audit.routes import audit_routes
from tframex_asgi.clock import ManualClock
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.context import RequestContextMiddleware
from tframex_asgi.layers import build_layer
from tframex_asgi.services import Services
from tframex_asgi.storage.memory import MemoryStorage


class StorageWriter:
    """A minimal WriteQueue double: submit() queues, flush() writes in order."""

    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage
        self.pending: list[tuple[str, dict[str, Any]]] = []

    def submit(self, table: str, row: dict[str, Any]) -> None:
        self.pending.append((table, row))

    async def flush(self) -> None:
        pending, self.pending = self.pending, []
        for table, row in pending:
            await self.storage.write(table, row)


@pytest.fixture
async def env() -> AsyncIterator[tuple[httpx.AsyncClient, AuditLogger, ManualClock]]:
    config = EnterpriseConfig.from_kwargs(
        enable_security=True, security_config={"audit": {"level": "full", "redact_fields": ["ssn"]}}
    )
    storage = MemoryStorage()
    await storage.write("users", {"id": ALICE.id, "username": "alice"})
    clock = ManualClock()
    services = Services(config, clock=clock, storage=storage)
    writer = StorageWriter(storage)
    services.writer = writer
    audit = services.audit_logger = AuditLogger(writer, config.security.audit, clock=clock)
    inner = Router(routes=[])
    inner.routes.extend(audit_routes(config, storage, audit, writer))

    async def as_auditor(scope: Any, receive: Any, send: Any) -> None:
        # Stands in for authentication: the caller holds audit.view unless the test says otherwise.
        scope["auth"] = AuthCredentials([] if _headers(scope).get(b"x-no-perm") else ["audit.view"])
        await inner(scope, receive, send)

    app = build_layer("audit", as_auditor, services)
    assert app is not None
    transport = httpx.ASGITransport(app=RequestContextMiddleware(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client, audit, clock


def _headers(scope: Any) -> dict[bytes, bytes]:
    return dict(scope.get("headers", ()))


def scope(i: int, principal: Any = None) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": f"/agents/a{i}/run",
        "headers": [],
        "query_string": b"",
        "tframex": {"request_id": f"r{i}", "client_ip": "10.0.0.9", "principal": principal},
    }


async def test_filters_and_paging(env: Any) -> None:
    client, audit, clock = env
    for i in range(6):
        clock.advance(60)
        audit.log_request(
            scope(i, ALICE if i % 2 else None),
            status=200 if i % 2 else 401,
            duration_ms=1,
            route="/agents/{name}/run",
            reason=None if i % 2 else "invalid_token",
        )
    # A millisecond later: rows of the same instant are ordered by id (arbitrary), not by arrival.
    clock.advance(0.001)
    audit.log_change(
        principal=ALICE,
        action="user.update",
        resource_type="user",
        resource_id="u2",
        old_values={"ssn": "123-45-6789"},
        new_values={"password": "hunter2", "email": "b@x.io"},
    )

    page = (await client.get("/audit", params={"limit": 2})).json()
    assert [r["action"] for r in page["items"]] == ["user.update", "POST /agents/{name}/run"]
    assert page["next_offset"] == 2
    # Level full: each GET /audit is itself recorded (after its response, so one so far).
    everything = (await client.get("/audit", params={"limit": 50})).json()["items"]
    assert [r["action"] for r in everything].count("GET /audit") == 1 and len(everything) == 8

    denied = (await client.get("/audit", params={"reason": "invalid_token"})).json()["items"]
    assert [r["request_id"] for r in denied] == ["r4", "r2", "r0"] and all(r["status"] == "denied" for r in denied)
    mine = (await client.get("/audit", params={"user_id": ALICE.id, "action": "POST /agents/{name}/run"})).json()
    assert [r["request_id"] for r in mine["items"]] == ["r5", "r3", "r1"]

    # r5 and the change are at T, r4 at T-60 ... r0 at T-300: the window [T-181, T-1] holds r4, r3, r2.
    now = clock.time()
    window = (
        await client.get("/audit", params={"since": str(now - 181), "until": str(now - 1), "offset": 1, "limit": 5})
    ).json()["items"]
    assert [r["request_id"] for r in window] == ["r3", "r2"]

    text = (await client.get("/audit", params={"limit": 100})).text
    assert "hunter2" not in text and "123-45-6789" not in text
    assert "b@x.io" in text


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "x"},
        {"offset": "-1"},
        {"user_id": "nope"},
        {"since": "yesterday"},
        {"until": "1e300"},
        {"since": "nan"},
        {"password": "x"},
    ],
)
async def test_bad_parameters_are_400(env: Any, query: dict[str, str]) -> None:
    client, _, _ = env
    response = await client.get("/audit", params=query)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


async def test_audit_view_is_required_even_without_rbac(env: Any) -> None:
    client, audit, _ = env
    response = await client.get("/audit", headers={"x-no-perm": "1"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    last = [row for table, row in audit.sink.pending if table == "audit_logs"][-1]
    assert (last["action"], last["reason"]) == ("GET /audit", "forbidden")
