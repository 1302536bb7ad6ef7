"""The storage contract, identical on memory, SQLite, PostgreSQL and (where it applies) S3."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tframex_asgi.errors import ConflictError, ValidationError
from tframex_asgi.storage import BaseStorage

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901)


async def _user(s: BaseStorage, name: str = "alice", **kw: object) -> str:
    return await s.write("users", {"username": name, **kw})


async def test_write_read_round_trip_types(storage: BaseStorage) -> None:
    uid = await _user(storage, email="a@example.com")
    conv = await storage.write(
        "conversations",
        {"user_id": uid, "agent_name": "bot", "created_at": T0, "metadata": {"k": [1, 2.5, None, "é"], "n": {}}},
    )
    rows = await storage.read("conversations", {"id": conv})
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == conv and isinstance(row["id"], str)
    assert row["user_id"] == uid
    assert row["created_at"] == T0 and row["created_at"].tzinfo is None
    assert isinstance(row["updated_at"], datetime)
    assert row["metadata"] == {"k": [1, 2.5, None, "é"], "n": {}}
    assert row["title"] is None
    assert set(row) == {"id", "user_id", "agent_name", "title", "created_at", "updated_at", "metadata"}
    user = (await storage.read("users", {"id": uid}))[0]
    assert user["is_active"] is True and user["email"] == "a@example.com"


async def test_defaults_and_scalar_types(storage: BaseStorage) -> None:
    mid = await storage.write(
        "metrics", {"metric_name": "m", "metric_type": "gauge", "value": 3, "labels": ["a"], "source": "x"}
    )
    eid = await storage.write(
        "events",
        {
            "event_type": "login",
            "event_source": "auth",
            "action": "a",
            "ip_address": "10.0.0.1",
            "details": {"nested": {"deep": True}},
        },
    )
    ae = await storage.write("agent_executions", {"agent_name": "a"})
    m = (await storage.read("metrics", {"id": mid}))[0]
    assert m["value"] == 3.0 and isinstance(m["value"], float)
    assert m["labels"] == ["a"]
    e = (await storage.read("events", {"id": eid}))[0]
    assert e["ip_address"] == "10.0.0.1" and e["status"] == "success"
    assert e["details"] == {"nested": {"deep": True}}
    a = (await storage.read("agent_executions", {"id": ae}))[0]
    assert a["tool_calls_count"] == 0 and a["status"] == "success" and isinstance(a["started_at"], datetime)
    f = await storage.write("flow_executions", {"flow_name": "f"})
    assert (await storage.read("flow_executions", {"id": f}))[0]["status"] == "running"


async def test_aware_datetimes_become_naive_utc(storage: BaseStorage) -> None:
    aware = datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    uid = await _user(storage, created_at=aware)
    row = (await storage.read("users", {"id": uid}))[0]
    assert row["created_at"] == datetime(2026, 5, 1, 10, 0)
    assert (await storage.read("users", {"created_at": datetime(2026, 5, 1, 10, 0, tzinfo=UTC)}))[0]["id"] == uid


async def test_filters_none_matches_null_and_count(storage: BaseStorage) -> None:
    await _user(storage, "a", email="a@x")
    await _user(storage, "b")
    await _user(storage, "c")
    assert await storage.count("users") == 3
    assert await storage.count("users", {"email": None}) == 2
    assert [r["username"] for r in await storage.read("users", {"email": "a@x"})] == ["a"]
    assert await storage.read("users", {"username": "zzz"}) == []


async def test_order_limit_offset(storage: BaseStorage) -> None:
    for i, name in enumerate(["b", "a", "d", "c", "É", "e"]):
        await _user(storage, name, created_at=T0 + timedelta(seconds=i), email=None if i % 2 else f"{name}@x")
    names = [r["username"] for r in await storage.read("users", order_by="username")]
    assert names == ["a", "b", "c", "d", "e", "É"]  # code-point order everywhere
    desc = [r["username"] for r in await storage.read("users", order_by="-created_at", limit=2, offset=1)]
    assert desc == ["É", "c"]
    # NULLs last ascending, first descending (PostgreSQL's rule, applied by every backend).
    asc = [r["email"] for r in await storage.read("users", order_by=["email", "username"])]
    assert asc[:3] == ["b@x", "d@x", "É@x"] and asc[3:] == [None] * 3
    assert [r["email"] for r in await storage.read("users", order_by="-email")][:3] == [None] * 3
    assert await storage.read("users", order_by="username", limit=0) == []
    assert len(await storage.read("users", order_by="username", offset=5)) == 1


async def test_update_and_delete(storage: BaseStorage) -> None:
    uid = await _user(storage)
    assert await storage.update("users", uid, {"email": "new@x", "is_active": False}) is True
    row = (await storage.read("users", {"id": uid}))[0]
    assert row["email"] == "new@x" and row["is_active"] is False
    missing = str(uuid.uuid4())
    assert await storage.update("users", missing, {"email": "q"}) is False
    assert await storage.delete("users", missing) is False
    assert await storage.delete("users", uid) is True
    assert await storage.count("users") == 0


async def test_write_many_is_atomic_and_skip_existing(storage: BaseStorage) -> None:
    ids = await storage.write_many("users", [{"username": f"u{i}"} for i in range(5)])
    assert len(set(ids)) == 5 and await storage.count("users") == 5
    with pytest.raises(ConflictError):
        await storage.write_many("users", [{"username": "fresh"}, {"id": ids[1], "username": "dup"}])
    assert await storage.count("users", {"username": "fresh"}) == 0  # nothing of the failed batch
    rows = [{"id": ids[0], "username": "u0"}, {"username": "v"}]
    await storage.write_many("users", rows, skip_existing=True)
    assert await storage.count("users") == 6
    assert await storage.write_many("users", []) == []


async def test_constraints(relational: BaseStorage) -> None:
    storage = relational
    uid = await _user(storage)
    with pytest.raises(ConflictError):
        await _user(storage)  # UNIQUE username
    with pytest.raises(ConflictError):
        await storage.write("users", {"id": uid, "username": "other"})  # primary key
    with pytest.raises(ConflictError) as fk:
        await storage.write("conversations", {"user_id": str(uuid.uuid4()), "agent_name": "a"})
    assert fk.value.code == "foreign_key"
    with pytest.raises(ValidationError):
        await storage.write("messages", {"role": "robot"})  # CHECK
    with pytest.raises(ValidationError):
        await storage.write("conversations", {"user_id": uid})  # NOT NULL agent_name
    conv = await storage.write("conversations", {"user_id": uid, "agent_name": "a"})
    with pytest.raises(ConflictError):
        await storage.delete("users", uid)  # still referenced (no cascade)
    await storage.write("messages", {"conversation_id": conv, "role": "user", "content": "hi"})
    assert await storage.delete("conversations", conv) is True
    assert await storage.count("messages") == 0  # ON DELETE CASCADE


async def test_composite_keys(relational: BaseStorage) -> None:
    storage = relational
    uid = await _user(storage)
    rid = await storage.write("roles", {"name": "admin"})
    key = await storage.write("user_roles", {"user_id": uid, "role_id": rid})
    assert key == f"{uid}:{rid}"
    with pytest.raises(ConflictError):
        await storage.write("user_roles", {"user_id": uid, "role_id": rid})
    assert await storage.delete_where("user_roles", {"user_id": uid}) == 1
    await storage.write("user_roles", {"user_id": uid, "role_id": rid})
    assert await storage.delete("roles", rid) is True  # cascades to user_roles
    assert await storage.count("user_roles") == 0


async def test_delete_older_than(storage: BaseStorage) -> None:
    for i in range(4):
        await storage.write(
            "metrics", {"metric_name": "m", "metric_type": "counter", "timestamp": T0 + timedelta(days=i)}
        )
    assert await storage.delete_older_than("metrics", "timestamp", T0 + timedelta(days=2)) == 2
    assert await storage.count("metrics") == 2
    with pytest.raises(ValidationError):
        await storage.delete_older_than("metrics", "metric_name", T0)


@pytest.mark.parametrize(
    ("table", "data", "fragment"),
    [
        ("nope", {}, "unknown table 'nope'"),
        ("users", {"username": "x", "evil; DROP TABLE users": 1}, "unknown column"),
        ("users", {"username": "x\x00y"}, "NUL"),
        ("users", {"username": "\ud800"}, "surrogate"),
        ("users", {"username": "x" * 256}, "VARCHAR(255)"),
        ("users", {"username": 5}, "expected a string"),
        ("users", {"username": "x", "id": "not-a-uuid"}, "not a UUID"),
        ("users", {"username": "x", "is_active": "yes"}, "expected a bool"),
        ("flow_steps", {"step_name": "s", "step_type": "t", "step_order": 2**31}, "out of range"),
        ("metrics", {"metric_name": "m", "metric_type": "g", "value": float("nan")}, "NaN"),
        ("metrics", {"metric_name": "m", "metric_type": "g", "labels": {"a": "\x00"}}, "NUL"),
        ("metrics", {"metric_name": "m", "metric_type": "g", "labels": {"a": object()}}, "JSON"),
        ("events", {"event_type": "e", "event_source": "s", "action": "a", "ip_address": "999.1.1.1"}, "IP"),
        ("messages", {"role": "user", "content": "x" * (16 * 1024 * 1024 + 1)}, "exceeds the limit"),
    ],
)
async def test_bad_input_is_a_clear_error(storage: BaseStorage, table: str, data: dict, fragment: str) -> None:
    with pytest.raises(ValidationError) as err:
        await storage.write(table, data)
    assert fragment in str(err.value)


async def test_bad_names_in_read_update_delete(storage: BaseStorage) -> None:
    with pytest.raises(ValidationError, match="unknown column"):
        await storage.read("users", {"1=1 OR username": "x"})
    with pytest.raises(ValidationError, match="unknown column"):
        await storage.read("users", order_by="-username; DROP TABLE users")
    with pytest.raises(ValidationError, match="unknown table"):
        await storage.count("tframex_schema_migrations")
    with pytest.raises(ValidationError):
        await storage.update("users", str(uuid.uuid4()), {"id": str(uuid.uuid4())})
    with pytest.raises(ValidationError):
        await storage.delete_where("users", {})
    with pytest.raises(ValidationError):
        await storage.read("users", limit=-1)


async def test_unicode_and_large_values_round_trip(storage: BaseStorage) -> None:
    text = "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✓ 中文 \u200b emoji 🎉 " * 1000
    conv = await storage.write("conversations", {"agent_name": "ünï", "metadata": {"t": text, "🎉": [text]}})
    mid = await storage.write("messages", {"conversation_id": conv, "role": "assistant", "content": text * 50})
    msg = (await storage.read("messages", {"id": mid}))[0]
    assert msg["content"] == text * 50
    c = (await storage.read("conversations", {"agent_name": "ünï"}))[0]
    assert c["metadata"] == {"t": text, "🎉": [text]}


async def test_inet_networks_and_ipv6(storage: BaseStorage) -> None:
    a = await storage.write("audit_logs", {"action": "x", "resource_type": "r", "ip_address": "2001:DB8::1"})
    b = await storage.write("audit_logs", {"action": "x", "resource_type": "r", "ip_address": "10.1.0.0/16"})
    assert (await storage.read("audit_logs", {"id": a}))[0]["ip_address"] == "2001:db8::1"
    assert (await storage.read("audit_logs", {"id": b}))[0]["ip_address"] == "10.1.0.0/16"


async def test_migration_two_columns_and_api_keys(relational: BaseStorage) -> None:
    storage = relational
    uid = await _user(storage)
    key = await storage.write("api_keys", {"user_id": uid, "prefix": "tfx_abc", "key_hash": "h", "scopes": ["a"]})
    with pytest.raises(ConflictError):
        await storage.write("api_keys", {"user_id": uid, "prefix": "tfx_abc", "key_hash": "h"})
    aid = await storage.write(
        "audit_logs", {"action": "a", "resource_type": "r", "chain_id": "c", "seq": 2**40, "row_hash": "f" * 64}
    )
    assert (await storage.read("audit_logs", {"id": aid}))[0]["seq"] == 2**40
    assert await storage.delete("users", uid) is True  # api_keys cascade
    assert await storage.count("api_keys", {"id": key}) == 0


async def test_pruning_unlinks_rows_that_only_point_at_pruned_rows(relational: BaseStorage) -> None:
    old = await relational.write("conversations", {"agent_name": "a", "created_at": T0})
    new = await relational.write("conversations", {"agent_name": "a", "created_at": T0 + timedelta(days=9)})
    await relational.write("messages", {"conversation_id": old, "role": "user"})
    run = await relational.write("agent_executions", {"agent_name": "a", "conversation_id": old})
    keep = await relational.write("agent_executions", {"agent_name": "a", "conversation_id": new})
    assert await relational.delete_older_than("conversations", "created_at", T0 + timedelta(days=1)) == 1
    assert await relational.count("messages") == 0  # cascaded
    assert (await relational.read("agent_executions", {"id": run}))[0]["conversation_id"] is None
    assert (await relational.read("agent_executions", {"id": keep}))[0]["conversation_id"] == new


async def test_read_page_keyset(storage: BaseStorage) -> None:
    """Keyset pages: the same rows in the same order on every backend, ties broken by the key's
    last column, bounds inclusive, rows with a NULL key on no page, bad keys a ValidationError."""
    ids = [str(uuid.UUID(int=i + 1, version=4)) for i in range(9)]
    # Three instants, three rows each; the last instant's rows are the newest page.
    rows = [
        {"id": ids[i], "event_type": "t", "event_source": "s", "action": "a" if i % 2 else "b",
         "created_at": T0 + timedelta(seconds=i // 3)}
        for i in range(9)
    ]  # fmt: skip
    await storage.write_many("events", rows)
    await storage.write("events", {"event_type": "t", "event_source": "s", "action": "a", "created_at": None})
    order = ["-created_at", "-id"]
    first = await storage.read_page("events", {"event_type": "t"}, order_by=order, limit=4)
    assert [r["id"] for r in first] == [ids[8], ids[7], ids[6], ids[5]]
    key = (first[-1]["created_at"], first[-1]["id"])
    rest = await storage.read_page("events", {"event_type": "t"}, order_by=order, after=key, limit=10)
    assert [r["id"] for r in rest] == [ids[4], ids[3], ids[2], ids[1], ids[0]]  # never the NULL row
    window = {"created_at": (T0 + timedelta(seconds=1), T0 + timedelta(seconds=1))}
    within = await storage.read_page("events", {"action": "a"}, order_by=order, bounds=window, limit=10)
    assert [r["id"] for r in within] == [ids[5], ids[3]]
    ascending = await storage.read_page("events", None, order_by=["created_at", "id"], after=key, limit=2)
    assert [r["id"] for r in ascending] == [ids[6], ids[7]]
    assert [r["id"] for r in await storage.read_page("events", None, order_by=order, limit=2, offset=7)] == ids[1::-1]
    for bad in (
        {"order_by": ["-created_at", "id"]},  # mixed directions
        {"order_by": ["-action"]},  # text keys compare differently per database
        {"order_by": order, "after": (T0,)},  # a value per key column
        {"order_by": order, "after": ("yesterday", ids[0])},
        {"order_by": order, "bounds": {"created_at": ("soon", None)}},
    ):
        with pytest.raises(ValidationError):
            await storage.read_page("events", None, limit=5, **bad)  # type: ignore[arg-type]
