"""AuditLogger without HTTP: admin changes, events, sealing the chain, threads, and page-shift-safe reads."""

from __future__ import annotations

import threading
from typing import Any

from tests.audit.conftest import ALICE, FakePrincipal, ListSink
from tframex_asgi.audit.chain import CHAIN_END_ACTION, verify_rows
from tframex_asgi.audit.export import iter_rows
from tframex_asgi.audit.logger import AuditLogger
from tframex_asgi.audit.redact import REDACTED
from tframex_asgi.config.audit import AuditConfig
from tframex_asgi.storage.memory import MemoryStorage

SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/admin/api-keys",
    "headers": [(b"user-agent", b"admin-ui\n"), (b"authorization", b"Bearer abc")],
    "query_string": b"",
    "tframex": {"request_id": "req-9", "client_ip": "203.0.113.5", "principal": ALICE},
}


def test_log_change_redacts_and_carries_request_context(sink: ListSink) -> None:
    audit = AuditLogger(sink, AuditConfig(level="security"))
    audit.log_change(
        principal=None,
        action="api_key.create",
        resource_type="api_key",
        resource_id="k1",
        new_values={"name": "ci", "key": "tfx_plaintext_key", "scopes": ["agent.execute"]},
        scope=SCOPE,
    )
    (row,) = sink.table("audit_logs")
    assert row["new_values"]["key"] == REDACTED and "tfx_plaintext_key" not in sink.dump()
    assert row["new_values"]["actor"]["username"] == "alice" and row["user_id"] == ALICE.id
    assert (row["ip_address"], row["user_agent"], row["request_id"]) == ("203.0.113.5", "admin-ui\\n", "req-9")
    assert "Bearer abc" not in sink.dump()


def test_external_identities_are_not_linked_to_users(sink: ListSink) -> None:
    audit = AuditLogger(sink, AuditConfig(level="full"))
    ext = FakePrincipal("auth0|12345", "carol", auth_method="jwt", external=True)
    audit.log_change(principal=ext, action="role.grant", resource_type="user_role")
    (row,) = sink.table("audit_logs")
    assert row["user_id"] is None and row["new_values"]["actor"]["id"] == "auth0|12345"


def test_log_event_goes_to_events(sink: ListSink) -> None:
    audit = AuditLogger(sink, AuditConfig(level="security"))
    audit.log_event(
        event_type="auth",
        action="login",
        status="failure",
        reason="invalid_credentials",
        details={"username": "bob", "password": "pw"},
        scope=SCOPE,
    )
    (event,) = sink.table("events")
    assert sink.table("audit_logs") == []
    assert event["details"] == {
        "username": "bob",
        "password": REDACTED,
        "reason": "invalid_credentials",
        "actor": event["details"]["actor"],
        "request_id": "req-9",
    }
    assert event["ip_address"] == "203.0.113.5"


def test_close_seals_the_chain_and_later_rows_start_a_new_one(sink: ListSink) -> None:
    audit = AuditLogger(sink, AuditConfig(level="full"))
    for i in range(3):
        audit.log_change(principal=ALICE, action=f"user.update{i}", resource_type="user")
    first = audit.chain_id
    audit.close()
    audit.close()  # idempotent
    audit.log_change(principal=ALICE, action="late", resource_type="user")
    rows = sink.table("audit_logs")
    assert [r["action"] for r in rows][3] == CHAIN_END_ACTION and rows[3]["new_values"] == {"rows": 4}
    assert rows[4]["chain_id"] != first and rows[4]["seq"] == 1
    report = verify_rows(rows)
    assert report.ok and report.closed_chains == 1 and len(report.open_chains) == 1


def test_no_end_record_for_an_unused_chain(sink: ListSink) -> None:
    AuditLogger(sink, AuditConfig(level="full")).close()
    assert sink.rows == []


def test_threads_share_one_consistent_chain(sink: ListSink) -> None:
    audit = AuditLogger(sink, AuditConfig(level="full"))

    def work() -> None:
        for i in range(200):
            audit.log_change(principal=ALICE, action=f"a{i}", resource_type="user")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = sink.table("audit_logs")
    assert len(rows) == 800 and verify_rows(rows).ok


def test_a_broken_principal_never_breaks_the_caller(sink: ListSink) -> None:
    class Weird:
        is_authenticated = True

        @property
        def username(self) -> str:
            raise RuntimeError("boom")

    audit = AuditLogger(sink, AuditConfig(level="full"))
    audit.log_change(principal=Weird(), action="x", resource_type="y")  # logged, not raised
    audit.log_request(
        {"type": "http", "method": "GET", "path": "/", "tframex": {"principal": Weird()}}, status=200, duration_ms=1
    )
    assert sink.rows == []


async def test_iter_rows_skips_rows_shifted_by_live_appends(sink: ListSink) -> None:
    storage = MemoryStorage()
    early = AuditLogger(sink, AuditConfig(level="full"))
    early.signer.chain_id = "a" * 32  # type: ignore[union-attr]
    late = AuditLogger(sink, AuditConfig(level="full"))
    late.signer.chain_id = "b" * 32  # type: ignore[union-attr]
    for i in range(4):
        early.log_change(principal=None, action=f"e{i}", resource_type="t")
        late.log_change(principal=None, action=f"l{i}", resource_type="t")
    await storage.write_many("audit_logs", sink.table("audit_logs"))
    seen: list[dict[str, Any]] = []
    async for row in iter_rows(storage, page=3):
        seen.append(row)
        if len(seen) == 6:  # the cursor is in chain b: a live worker appends to chain a, before it
            sink.rows.clear()
            early.log_change(principal=None, action="e4", resource_type="t")
            await storage.write_many("audit_logs", sink.table("audit_logs"))
    ids = [r["id"] for r in seen]
    assert len(ids) == len(set(ids)) == 8  # the appended row sorts before the cursor: next export
    assert verify_rows(seen).ok
