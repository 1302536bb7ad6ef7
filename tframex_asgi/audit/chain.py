"""Tamper evidence: every audit row carries a hash chained to the previous row of its chain.

One chain per :class:`~tframex_asgi.audit.logger.AuditLogger` (a random ``chain_id`` per
process start, ``seq`` from 1), so several workers writing one database never contend for a
shared "last hash". ``row_hash = H(canonical JSON of every column except row_hash)``, where the
columns include ``chain_id``, ``seq`` and ``prev_hash``; H is SHA-256, or HMAC-SHA-256 when
``audit.hmac_key`` is set (then someone who can write the table cannot recompute hashes).
A clean shutdown appends an ``audit.chain_end`` row, which makes the tail truncation of a
closed chain detectable. See docs/audit.md for what is and is not detected.

What is hashed, and how it reads back identically from every backend, is
:mod:`tframex_asgi.audit.canonical`.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tframex_asgi.audit.canonical import (
    HASHED_COLUMNS,
    RequestParts,
    canon_json,
    canonical,
    canonical_bytes,
    compose_request,
    fresh_canonical_bytes,
    request_parts,
)
from tframex_asgi.audit.checkpoints import checkpoints_from

__all__ = [
    "CHAIN_END_ACTION",
    "GENESIS",
    "HASHED_COLUMNS",
    "ChainProblem",
    "ChainSigner",
    "RequestParts",
    "Verifier",
    "VerifyReport",
    "canonical",
    "canonical_bytes",
    "compose_request",
    "compute_hash",
    "digest",
    "fresh_canonical_bytes",
    "request_parts",
    "verify_rows",
]

CHAIN_END_ACTION = "audit.chain_end"
GENESIS = "0" * 64


def _actor_id(row: Mapping[str, Any]) -> str | None:
    values = canon_json(row.get("new_values"))
    actor = values.get("actor") if isinstance(values, dict) else None
    found = actor.get("id") if isinstance(actor, dict) else None
    return None if found is None else str(found)


def digest(data: bytes, key: bytes | None = None) -> str:
    """SHA-256, or HMAC-SHA-256 with ``key``, of canonical bytes, as hex."""
    if key:
        return hmac.digest(key, data, "sha256").hex()
    return hashlib.sha256(data).hexdigest()


def compute_hash(row: Mapping[str, Any], key: bytes | None = None, *, fresh: bool = False) -> str:
    return digest(canonical_bytes(row, fresh=fresh), key)


class ChainSigner:
    """Numbers and hashes the rows of one chain, in the order they are submitted."""

    def __init__(self, key: bytes | None = None, chain_id: str | None = None) -> None:
        self.key = key
        self.chain_id = chain_id or uuid.uuid4().hex
        self.seq = 0
        self.last_hash = GENESIS
        # log_change may be called from a thread (CLI, sync admin code): seq and hash must not race.
        self._lock = threading.Lock()

    def sign(self, row: dict[str, Any], parts: RequestParts | None = None) -> dict[str, Any]:
        """Add chain_id, seq, prev_hash and row_hash to ``row`` (in place) and return it.

        ``parts``: the static parts of the canonical JSON of a request row of this shape
        (:func:`request_parts` of an earlier row whose static values ``row`` shares)."""
        with self._lock:
            seq = self.seq + 1
            row["chain_id"] = self.chain_id
            row["seq"] = seq
            row["prev_hash"] = self.last_hash
            data = compose_request(parts, row) if parts is not None else None
            row_hash = row["row_hash"] = digest(data or fresh_canonical_bytes(row), self.key)
            # Committed only once hashed: a row that cannot be hashed (and is not written) leaves no gap.
            self.seq, self.last_hash = seq, row_hash
        return row


@dataclass(frozen=True)
class ChainProblem:
    chain_id: str | None
    seq: int | None
    row_id: str | None
    kind: str  # hash_mismatch | broken_link | missing_rows | duplicate_seq | rows_after_end | user_mismatch
    detail: str

    def __str__(self) -> str:
        return f"chain {self.chain_id} seq {self.seq} (row {self.row_id}): {self.kind}: {self.detail}"


@dataclass
class VerifyReport:
    rows: int = 0
    chains: int = 0
    closed_chains: int = 0
    open_chains: list[str] = field(default_factory=list)
    unchained_rows: int = 0
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Verifier:
    """Checks rows fed in (chain_id, seq) order, one chain after another, in constant memory."""

    def __init__(
        self,
        key: bytes | None = None,
        max_problems: int = 100,
        checkpoints: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        self.key = key
        self.max_problems = max_problems
        # chain_id -> (last pruned seq, its row_hash), from ``audit.prune`` rows
        # (tframex_asgi.audit.checkpoints): such a chain starts there, not at seq 1 and GENESIS.
        self.checkpoints = dict(checkpoints or {})
        self.report = VerifyReport()
        self._chain: str | None = None
        self._seq = 0
        self._last = GENESIS
        self._ended = False

    def _problem(self, row: Mapping[str, Any], kind: str, detail: str) -> None:
        if len(self.report.problems) < self.max_problems:
            seq = row.get("seq")
            self.report.problems.append(
                ChainProblem(self._chain, None if seq is None else int(seq), str(row.get("id")), kind, detail)
            )

    def _close_chain(self) -> None:
        if self._chain is None:
            return
        if self._ended:
            self.report.closed_chains += 1
        else:
            self.report.open_chains.append(self._chain)

    def feed(self, row: Mapping[str, Any]) -> None:
        self.report.rows += 1
        chain_id = row.get("chain_id")
        if chain_id is None or row.get("seq") is None:
            self.report.unchained_rows += 1
            return
        chain_id = str(chain_id)
        if chain_id != self._chain:
            self._close_chain()
            self.report.chains += 1
            start = self.checkpoints.get(chain_id, (0, GENESIS))
            self._chain, self._seq, self._last, self._ended = chain_id, start[0], start[1], False
        seq = int(row["seq"])
        if seq == self._seq:
            self._problem(row, "duplicate_seq", f"seq {seq} appears more than once")
            return
        if self._ended:
            self._problem(row, "rows_after_end", "row after the chain's end record")
        if seq != self._seq + 1:
            missing = f"{self._seq + 1}" if seq == self._seq + 2 else f"{self._seq + 1}..{seq - 1}"
            self._problem(row, "missing_rows", f"rows with seq {missing} are missing (deleted or truncated)")
        elif row.get("prev_hash") != self._last:
            self._problem(row, "broken_link", "prev_hash does not match the previous row's row_hash (reordered?)")
        if row.get("user_id") is not None and str(row["user_id"]) != _actor_id(row):
            self._problem(row, "user_mismatch", "user_id differs from the hashed actor id (edited)")
        expected = compute_hash(row, self.key)
        if not hmac.compare_digest(str(row.get("row_hash")), expected):
            self._problem(row, "hash_mismatch", "row content does not match its row_hash (edited)")
        self._seq = seq
        self._last = str(row.get("row_hash"))
        self._ended = row.get("action") == CHAIN_END_ACTION

    def finish(self) -> VerifyReport:
        self._close_chain()
        self._chain = None
        return self.report


def verify_rows(rows: Iterable[Mapping[str, Any]], key: bytes | None = None) -> VerifyReport:
    """Verify rows in any order (sorted here by chain and seq); for tests and small exports."""
    rows = list(rows)
    verifier = Verifier(key, checkpoints=checkpoints_from(rows))
    for row in sorted(rows, key=lambda r: (str(r.get("chain_id") or ""), int(r.get("seq") or 0))):
        verifier.feed(row)
    return verifier.finish()
