"""Trusted rows (``submit(..., trusted=True)``): same rows stored, bad ones fall back, replays validated."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tframex_asgi.config.persistence import WriteQueueConfig
from tframex_asgi.errors import StorageError, ValidationError
from tframex_asgi.storage import BaseStorage, open_storage
from tframex_asgi.storage.codec import SQLITE_TS_FORMAT, to_sqlite
from tframex_asgi.storage.memory import MemoryStorage
from tframex_asgi.storage.queue import WriteQueue
from tframex_asgi.storage.schema import TABLES
from tframex_asgi.storage.validate import _INET_MEMO, coerce, prepare_insert

FAST = WriteQueueConfig(max_size=1000, batch_size=50, flush_interval=0.01)


class Recording(MemoryStorage):
    """Memory storage that records the size of every batch and can be 'down'."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls: list[tuple[str, int]] = []

    async def write_many(
        self, table: str, rows: Sequence[Mapping[str, Any]], *, skip_existing: bool = False
    ) -> list[str]:
        self.calls.append((table, len(rows)))
        if self.down:
            raise StorageError("connection refused")
        return await super().write_many(table, rows, skip_existing=skip_existing)


def _writer(storage: BaseStorage, tmp_path: Path) -> WriteQueue:
    return WriteQueue(storage, FAST, spill_path=str(tmp_path / "spill.jsonl"), retry_delay=0.005, max_retry_delay=0.02)


def _audit(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "user_id": None,
        "action": f"GET /r{i}",
        "resource_type": "http",
        "resource_id": f"/r{i}",
        "old_values": None,
        "new_values": {"status_code": 200, "path": f"/r{i}", "ünï": "cödé"},
        "ip_address": f"10.0.0.{i % 250}",
        "user_agent": "agent/1.0",
        "created_at": datetime(2026, 1, 2, 3, 4, 5, i),
        "chain_id": "c" * 32,
        "seq": i,
        "prev_hash": "a" * 64,
        "row_hash": "b" * 64,
        "status": "success",
        "reason": None,
        "request_id": f"req-{i}",
        **extra,
    }


async def test_trusted_rows_are_stored_exactly_like_validated_ones(relational: BaseStorage, tmp_path: Path) -> None:
    trusted, plain = [_audit(i) for i in range(40)], [_audit(i) for i in range(40)]
    writer = _writer(relational, tmp_path)
    await writer.start()
    for a, b in zip(trusted, plain, strict=True):
        writer.submit("audit_logs", a, trusted=True)
        writer.submit("audit_logs", b)
    await writer.flush()
    assert writer.written_total == 80 and writer.rejected_total == 0 and writer.dropped_total == 0
    for a, b in zip(trusted, plain, strict=True):
        got_a = (await relational.read("audit_logs", {"id": a["id"]}))[0]
        got_b = (await relational.read("audit_logs", {"id": b["id"]}))[0]
        assert {k: v for k, v in got_a.items() if k != "id"} == {k: v for k, v in got_b.items() if k != "id"}
        assert got_a["new_values"] == a["new_values"] and got_a["ip_address"] == a["ip_address"]
    await writer.stop()


async def test_trusted_rows_still_get_an_id_and_their_timestamps(tmp_path: Path) -> None:
    store = Recording()
    writer = _writer(store, tmp_path)
    await writer.start()
    writer.submit("metrics", {"metric_name": "m", "metric_type": "counter", "value": 1.0}, trusted=True)
    await writer.flush()
    (row,) = await store.read("metrics")
    assert uuid.UUID(row["id"]) and isinstance(row["timestamp"], datetime)
    assert store.calls == [("metrics", 1)]
    await writer.stop()


async def test_a_bad_trusted_row_falls_back_and_loses_no_other_row(tmp_path: Path) -> None:
    store = Recording()
    writer = _writer(store, tmp_path)
    await writer.start()
    rows = [_audit(i) for i in range(10)]
    rows[3]["user_agent"] = "bad\x00agent"  # a caller bug: NUL
    rows[5]["unknown_column"] = 1  # a caller bug: not a column
    rows[7]["ip_address"] = "10.0.0.7/32"  # not canonical: still stored as the validated path would
    for row in rows:
        writer.submit("audit_logs", row, trusted=True)
    await writer.flush()
    assert writer.rejected_total == 2 and writer.dropped_total == 0
    stored = {r["id"]: r for r in await store.read("audit_logs")}
    assert set(stored) == {r["id"] for i, r in enumerate(rows) if i not in (3, 5)}
    assert stored[rows[7]["id"]]["ip_address"] == "10.0.0.7"
    # The batch failed, then every row was written on its own.
    assert store.calls[0] == ("audit_logs", 10)
    assert all(n == 1 for _, n in store.calls[1:])
    await writer.stop()


async def test_a_trusted_row_naming_an_unknown_user_is_unlinked_not_lost(tmp_path: Path) -> None:
    store = open_storage(f"sqlite:///{tmp_path}/t.db")
    await store.connect()
    try:
        writer = _writer(store, tmp_path)
        await writer.start()
        rows = [_audit(i) for i in range(3)]
        rows[1]["user_id"] = str(uuid.uuid4())  # a token identity: no users row
        for row in rows:
            writer.submit("audit_logs", row, trusted=True)
        await writer.flush()
        assert writer.written_total == 3 and writer.rejected_total == 0
        got = (await store.read("audit_logs", {"id": rows[1]["id"]}))[0]
        assert got["user_id"] is None and got["action"] == "GET /r1"
        await writer.stop()
    finally:
        await store.close()


async def test_spilled_trusted_rows_are_replayed_validated_once(tmp_path: Path) -> None:
    store = Recording()
    writer = _writer(store, tmp_path)
    await writer.start()
    store.down = True
    rows = [_audit(i) for i in range(30)]
    for row in rows:
        writer.submit("audit_logs", row, trusted=True)
    await writer.flush()
    assert writer.spilled_total == 30 and await store.count("audit_logs") == 0
    assert all(json.loads(line)["t"] == "audit_logs" for line in (tmp_path / "spill.jsonl").read_bytes().splitlines())
    store.down, store.calls = False, []
    await writer.drain()
    assert await store.count("audit_logs") == 30 and writer.dropped_total == 0
    assert store.calls
    stored = {r["id"]: r for r in await store.read("audit_logs")}
    assert stored[rows[4]["id"]]["created_at"] == rows[4]["created_at"]
    assert stored[rows[4]["id"]]["new_values"] == rows[4]["new_values"]
    await writer.stop()


async def test_trusted_on_an_unknown_table_is_rejected(tmp_path: Path) -> None:
    store = Recording()
    writer = _writer(store, tmp_path)
    writer.submit("nope", {"id": "x"}, trusted=True)
    assert writer.rejected_total == 1 and writer.dropped_total == 0 and writer.depth == 0


# -- the fast paths of prepare_insert give exactly what the coerce functions give ---------------
@pytest.mark.parametrize(
    ("kind_col", "value"),
    [
        (("audit_logs", "action"), "plain"),
        (("audit_logs", "action"), "ünïcödé"),
        (("audit_logs", "id"), "6F9619FF-8B86-D011-B42D-00CF4FC964FF"),
        (("audit_logs", "id"), uuid.UUID("6f9619ff-8b86-d011-b42d-00cf4fc964ff")),
        (("audit_logs", "id"), "6f9619ff8b86d011b42d00cf4fc964ff"),
        (("audit_logs", "created_at"), datetime(2026, 1, 1, tzinfo=UTC)),
        (("audit_logs", "created_at"), "2026-01-01T01:02:03+02:00"),
        (("audit_logs", "ip_address"), "2001:0db8:0000:0000:0000:0000:0000:0001"),
        (("audit_logs", "ip_address"), "10.1.2.3/32"),
        (("audit_logs", "ip_address"), "10.1.2.0/24"),
        (("audit_logs", "new_values"), {"k": [1, 2.5, None, "é"]}),
    ],
)
def test_prepare_insert_fast_paths_equal_the_coerce_functions(kind_col: tuple[str, str], value: Any) -> None:
    table, name = kind_col
    tbl = TABLES[table]
    expected = coerce(tbl.by_name[name], value, name)
    for _ in range(2):  # the second time from the INET memo
        row = prepare_insert(table, {**_audit(0), name: value})[1]
        assert row[name] == expected and type(row[name]) is type(expected)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("action", "x" * 101),
        ("action", "a\x00b"),
        ("action", "\ud800"),
        ("action", 5),
        ("id", "not-a-uuid"),
        ("ip_address", "not an address"),
        ("ip_address", "999.1.1.1"),
        ("new_values", {"a": float("nan")}),
        ("new_values", {"a": "\x00"}),
        ("seq", 2**63),
        ("created_at", 5),
    ],
)
def test_prepare_insert_rejects_what_it_always_rejected(name: str, value: Any) -> None:
    for _ in range(2):  # a bad address never enters the INET memo
        with pytest.raises(ValidationError):
            prepare_insert("audit_logs", {**_audit(0), name: value})
    assert "not an address" not in _INET_MEMO and "999.1.1.1" not in _INET_MEMO


def test_sqlite_timestamp_text_is_unchanged() -> None:
    for value in (datetime(2026, 11, 25, 10, 0, 0, 123), datetime(1, 1, 1), datetime(999, 12, 31, 23, 59, 59, 999999)):
        text = value.strftime(SQLITE_TS_FORMAT)
        legacy = text if len(text) == 26 else value.isoformat(sep=" ", timespec="microseconds")
        assert to_sqlite("timestamp", value) == legacy
