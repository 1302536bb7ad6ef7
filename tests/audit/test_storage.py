"""Rows the logger builds, stored and read back by every SQL/memory backend, still verify."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.audit.conftest import ALICE, ListSink
from tframex_asgi.audit.export import verify_storage
from tframex_asgi.audit.logger import AuditLogger
from tframex_asgi.config.audit import AuditConfig
from tframex_asgi.config.persistence import PersistenceConfig
from tframex_asgi.storage import open_storage


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    # Sync: the PostgreSQL fixtures run their own event loop.
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/audit.db"
    return str(request.getfixturevalue("pg_schema_dsn"))


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Any]:
    url = storage_url
    store = open_storage(url, PersistenceConfig(enabled=True, connection_string=url))
    await store.connect()
    await store.write("users", {"id": ALICE.id, "username": "alice", "email": "a@example.com"})
    yield store
    await store.close()


async def write_all(store: Any, sink: ListSink) -> None:
    for table in ("audit_logs", "events"):
        rows = sink.table(table)
        if rows:
            await store.write_many(table, rows)


async def test_rows_read_back_verify_and_tampering_is_found(storage: Any) -> None:
    sink = ListSink()
    audit = AuditLogger(sink, AuditConfig(level="full", hmac_key="k" * 20))
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "headers": [(b"user-agent", b"ua\r\nx")],
        "query_string": b"a=1&token=zzz",
        "client": ("::ffff:10.0.0.1", 1),
        "tframex": {"request_id": "r1", "client_ip": "2001:db8::1", "principal": ALICE},
    }
    audit.log_request(scope, status=200, duration_ms=3, route="/x", path="/x")
    audit.log_request(dict(scope, tframex={"request_id": "r2"}), status=401, duration_ms=1, reason="invalid_token")
    audit.log_change(
        principal=ALICE,
        action="user.create",
        resource_type="user",
        resource_id="u1",
        new_values={"username": "bob", "password": "pw", "score": 1.0, "ratio": 0.25},
    )
    audit.log_event(
        event_type="security", action="login", status="failure", reason="invalid_credentials", details={"attempts": 3}
    )
    audit.close()
    await write_all(storage, sink)
    key = b"k" * 20
    report = await verify_storage(storage, key)
    assert report.ok, report.problems
    assert (report.rows, report.closed_chains) == (4, 1)
    assert await storage.count("events") == 2  # the 401 and the log_event

    target = (await storage.read("audit_logs", {"seq": 2}))[0]
    await storage.update("audit_logs", target["id"], {"reason": "forbidden"})
    report = await verify_storage(storage, key)
    assert [(p.kind, p.seq) for p in report.problems] == [("hash_mismatch", 2)]

    await storage.delete("audit_logs", target["id"])
    report = await verify_storage(storage, key)
    assert [(p.kind, p.seq) for p in report.problems] == [("missing_rows", 3)]


async def test_several_writers_keep_separate_valid_chains(storage: Any, tmp_path: Any) -> None:
    # Two worker processes = two loggers with their own queues, interleaving into one table.
    from tframex_asgi.storage.queue import WriteQueue

    queues = [WriteQueue(storage, spill_path=str(tmp_path / f"spill-{i}.jsonl")) for i in range(2)]
    loggers = [AuditLogger(q, AuditConfig(level="full")) for q in queues]
    for q in queues:
        await q.start()
    for i in range(30):
        for n, audit in enumerate(loggers):
            audit.log_change(principal=ALICE, action=f"w{n}.change{i}", resource_type="user", resource_id=str(i))
        if i % 7 == 0:
            await queues[i % 2].flush()
    for audit in loggers:
        await audit.aclose()
    for q in queues:
        await q.stop()
    report = await verify_storage(storage)
    assert report.ok, report.problems
    assert (report.rows, report.chains, report.closed_chains) == (62, 2, 2)
