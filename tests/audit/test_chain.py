"""The hash chain: what verify detects (edits, deletions, reordering, truncation) and what it reads back."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import uuid
from typing import Any

from tframex_asgi.audit.chain import (
    CHAIN_END_ACTION,
    ChainSigner,
    compute_hash,
    verify_rows,
)


def make_chain(n: int, *, key: bytes | None = None, end: bool = True) -> list[dict[str, Any]]:
    signer = ChainSigner(key)
    rows = []
    for i in range(n):
        rows.append(
            signer.sign(
                {
                    "id": str(uuid.uuid4()),
                    "user_id": None,
                    "action": f"GET /r{i}",
                    "resource_type": "http",
                    "resource_id": f"/r{i}",
                    "old_values": None,
                    "new_values": {"status_code": 200, "i": i},
                    "ip_address": "127.0.0.1",
                    "user_agent": "t",
                    "created_at": dt.datetime(2026, 1, 1, 0, 0, i),
                    "status": "success",
                    "reason": None,
                    "request_id": f"req-{i}",
                }
            )
        )
    if end:
        rows.append(
            signer.sign(
                {
                    "id": str(uuid.uuid4()),
                    "action": CHAIN_END_ACTION,
                    "resource_type": "audit_chain",
                    "created_at": dt.datetime(2026, 1, 1, 1),
                    "status": "success",
                }
            )
        )
    return rows


def test_intact_chains_verify() -> None:
    rows = make_chain(5) + make_chain(3, end=False)
    report = verify_rows(reversed(rows))  # storage order does not matter
    assert report.ok, report.problems
    assert (report.rows, report.chains, report.closed_chains, len(report.open_chains)) == (9, 2, 1, 1)


def test_hash_survives_backend_representations() -> None:
    row = make_chain(1, end=False)[0]
    # What PostgreSQL/SQLite drivers give back: UUID objects, INET objects, JSON text, aware/ISO times.
    back = dict(
        row,
        id=uuid.UUID(row["id"]),
        ip_address=ipaddress.ip_address("127.0.0.1"),
        new_values=json.dumps(row["new_values"]),
        created_at=row["created_at"].isoformat(sep=" "),
    )
    assert compute_hash(back) == row["row_hash"]
    aware = dict(row, created_at=row["created_at"].replace(tzinfo=dt.UTC), new_values={"status_code": 200.0, "i": 0})
    assert compute_hash(aware) == row["row_hash"]


def test_edited_row_is_detected() -> None:
    rows = make_chain(5)
    rows[2]["status"] = "denied"
    report = verify_rows(rows)
    assert [(p.kind, p.seq) for p in report.problems] == [("hash_mismatch", 3)]


def test_edited_row_with_recomputed_hash_breaks_the_next_link() -> None:
    rows = make_chain(5)
    rows[2]["user_agent"] = "forged"
    rows[2]["row_hash"] = compute_hash(rows[2])
    report = verify_rows(rows)
    assert [(p.kind, p.seq) for p in report.problems] == [("broken_link", 4)]


def test_hmac_key_is_needed_to_forge() -> None:
    key = b"k" * 32
    rows = make_chain(3, key=key)
    assert verify_rows(rows, key).ok
    assert not verify_rows(rows).ok  # wrong (no) key
    forged = [dict(r) for r in rows]
    for r in forged:  # someone who rewrites every hash without the key
        r["prev_hash"] = forged[forged.index(r) - 1]["row_hash"] if r["seq"] > 1 else r["prev_hash"]
        r["row_hash"] = compute_hash(r)
    assert not verify_rows(forged, key).ok


def test_deleted_row_is_detected() -> None:
    rows = make_chain(5)
    del rows[1]
    report = verify_rows(rows)
    assert [(p.kind, p.seq) for p in report.problems] == [("missing_rows", 3)]


def test_deleted_head_is_detected() -> None:
    rows = make_chain(5)[2:]
    assert [p.kind for p in verify_rows(rows).problems] == ["missing_rows"]


def test_reordered_rows_are_detected() -> None:
    rows = make_chain(5)
    rows[1]["seq"], rows[2]["seq"] = rows[2]["seq"], rows[1]["seq"]
    report = verify_rows(rows)
    assert not report.ok
    assert {p.kind for p in report.problems} <= {"broken_link", "hash_mismatch"}


def test_truncated_tail_of_a_closed_chain_is_detected() -> None:
    rows = make_chain(5)
    del rows[-3:-1]  # the last two rows before the end record
    report = verify_rows(rows)
    assert [p.kind for p in report.problems] == ["missing_rows"]


def test_truncated_tail_with_end_record_leaves_an_open_chain() -> None:
    # The documented limit: without its end record a chain is indistinguishable from a crashed process.
    rows = make_chain(5)[:-2]
    report = verify_rows(rows)
    assert report.ok and len(report.open_chains) == 1


def test_duplicated_row_and_unchained_rows() -> None:
    rows = make_chain(3)
    rows.append(dict(rows[1], id=str(uuid.uuid4())))
    rows.append({"id": "x", "action": "legacy"})
    report = verify_rows(rows)
    assert [p.kind for p in report.problems] == ["duplicate_seq"]
    assert report.unchained_rows == 1


def test_user_id_may_be_cleared_but_not_changed() -> None:
    rows = make_chain(2)
    actor = "6f1c1f5e-1d5e-4c1b-9a55-0d7f3e1e2a10"
    signer = ChainSigner()
    signed = [
        signer.sign(
            {
                "id": str(uuid.uuid4()),
                "user_id": actor,
                "action": "a",
                "resource_type": "user",
                "new_values": {"actor": {"id": actor}},
                "created_at": dt.datetime(2026, 1, 1),
            }
        )
        for _ in range(3)
    ]
    signed[0]["user_id"] = None  # what the write queue does when the user was deleted meanwhile
    assert verify_rows(rows + signed).ok
    signed[1]["user_id"] = str(uuid.uuid4())
    assert [p.kind for p in verify_rows(signed).problems] == ["user_mismatch"]
