"""Tamper evidence: every audit row carries a hash chained to the previous row of its chain.

One chain per :class:`~tframex_asgi.audit.logger.AuditLogger` (a random ``chain_id`` per
process start, ``seq`` from 1), so several workers writing one database never contend for a
shared "last hash". ``row_hash = H(canonical JSON of every column except row_hash)``, where the
columns include ``chain_id``, ``seq`` and ``prev_hash``; H is SHA-256, or HMAC-SHA-256 when
``audit.hmac_key`` is set (then someone who can write the table cannot recompute hashes).
A clean shutdown appends an ``audit.chain_end`` row, which makes the tail truncation of a
closed chain detectable. See docs/audit.md for what is and is not detected.

Values are canonicalised so a row reads back with the same hash from every backend: UUIDs and
INET values as text, timestamps as naive UTC ISO with microseconds, JSON columns parsed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any

from tframex_asgi.audit.checkpoints import checkpoints_from

__all__ = [
    "CHAIN_END_ACTION",
    "GENESIS",
    "HASHED_COLUMNS",
    "ChainProblem",
    "ChainSigner",
    "Verifier",
    "VerifyReport",
    "canonical_bytes",
    "compute_hash",
    "digest",
    "fresh_canonical_bytes",
    "verify_rows",
]

CHAIN_END_ACTION = "audit.chain_end"
GENESIS = "0" * 64
# user_id is left out: it references users(id), and the write queue clears a reference to a user
# deleted before the row reached the database. The actor's id is hashed inside new_values, and
# verify requires user_id to be NULL or that id, so it still cannot be pointed at someone else.
HASHED_COLUMNS = (
    "id", "chain_id", "seq", "prev_hash", "action", "resource_type", "resource_id", "old_values",
    "new_values", "ip_address", "user_agent", "created_at", "status", "reason", "request_id",
)  # fmt: skip
_JSON_COLUMNS = frozenset({"old_values", "new_values"})


def _canon_time(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return str(value.isoformat(sep="T", timespec="microseconds"))
    return str(value)


def _canon_json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return _canon_numbers(value)


def _canon_numbers(value: Any) -> Any:
    # JSONB gives 1.0 back as 1.0 and SQLite's json as 1: compare integral floats as ints.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _canon_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canon_numbers(v) for v in value]
    return value


def _canon_ip(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    try:
        return ipaddress.ip_interface(text).ip.compressed
    except ValueError:
        return text


def _actor_id(row: Mapping[str, Any]) -> str | None:
    values = _canon_json(row.get("new_values"))
    actor = values.get("actor") if isinstance(values, dict) else None
    found = actor.get("id") if isinstance(actor, dict) else None
    return None if found is None else str(found)


def canonical(row: Mapping[str, Any], *, fresh: bool = False) -> dict[str, Any]:
    """The hashed columns of ``row`` in the form every backend reads back identically.

    ``fresh``: the row was just built by the logger (JSON values already plain, without floats;
    the address already compressed), so the costly read-back normalisation is skipped.
    """
    out: dict[str, Any] = {}
    for col in HASHED_COLUMNS:
        value = row.get(col)
        if col == "created_at":
            value = _canon_time(value)
        elif fresh:
            pass
        elif col in _JSON_COLUMNS:
            value = _canon_json(value)
        elif col == "ip_address":
            value = _canon_ip(value)
        elif col == "seq":
            value = None if value is None else int(value)
        elif isinstance(value, uuid.UUID):
            value = str(value)
        out[col] = value
    return out


# Exactly what json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True) writes:
# json.dumps builds a new encoder on every call with non-default arguments; this one is reused.
_CANON_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode


def canonical_bytes(row: Mapping[str, Any], *, fresh: bool = False) -> bytes:
    return _CANON_ENCODE(canonical(row, fresh=fresh)).encode("ascii")


# The shape of the rows AuditLogger builds for requests (new_values and its actor), whose
# canonical JSON is written by a template below rather than by canonical() + the encoder.
_REQUEST_VALUES = frozenset({"actor", "duration_ms", "method", "path", "query", "route", "status_code"})
_ACTOR = frozenset({"api_key_id", "auth_method", "external", "id", "username"})


# The static parts of a request row's canonical JSON: everything but the per-row values
# (chain_id, created_at, id, duration_ms, prev_hash, request_id and seq), which go between them.
RequestParts = tuple[str, str, str, str, str, str]


def request_parts(row: Mapping[str, Any]) -> RequestParts | None:
    """The static parts of ``canonical_bytes(row, fresh=True)`` for a request row (see
    :func:`compose_request`), or None when ``row`` has another shape.

    Keys in sorted order, strings through the encoder's own escaper (which raises TypeError for
    anything but a str, sending the row to the generic path), integers as ``int.__repr__``
    (bools excluded: JSON writes them as true/false). The per-row values are checked by
    :func:`compose_request`. tests/audit/test_chain.py checks the result against canonical_bytes.
    """
    values = row.get("new_values")
    created = row.get("created_at")
    if (
        type(values) is not dict
        or values.keys() != _REQUEST_VALUES
        or row.get("old_values") is not None
        or type(created) is not dt.datetime
        or created.tzinfo is not None
        or type(values["status_code"]) is not int
    ):
        return None
    esc = encode_basestring_ascii
    get = row.get
    try:
        actor = values["actor"]
        if actor is None:
            actor_json = "null"
        elif type(actor) is dict and actor.keys() == _ACTOR and type(actor["external"]) is bool:
            key_id, method = actor["api_key_id"], actor["auth_method"]
            actor_json = (
                f'{{"api_key_id":{"null" if key_id is None else esc(key_id)},'
                f'"auth_method":{"null" if method is None else esc(method)},'
                f'"external":{"true" if actor["external"] else "false"},'
                f'"id":{esc(actor["id"])},"username":{esc(actor["username"])}}}'
            )
        else:
            return None
        ip, route, reason, user_agent = get("ip_address"), values["route"], get("reason"), get("user_agent")
        return (
            f'{{"action":{esc(row["action"])},"chain_id":',
            f',"ip_address":{"null" if ip is None else esc(ip)},"new_values":{{"actor":{actor_json},"duration_ms":',
            f',"method":{esc(values["method"])},"path":{esc(values["path"])},"query":{esc(values["query"])},'
            f'"route":{"null" if route is None else esc(route)},'
            f'"status_code":{int.__repr__(values["status_code"])}}},"old_values":null,"prev_hash":',
            f',"reason":{"null" if reason is None else esc(reason)},"request_id":',
            f',"resource_id":{esc(row["resource_id"])},"resource_type":{esc(row["resource_type"])},"seq":',
            f',"status":{esc(row["status"])},"user_agent":{"null" if user_agent is None else esc(user_agent)}}}',
        )
    except (TypeError, KeyError):  # a value that is not a str where the template expects one
        return None


def compose_request(parts: RequestParts, row: Mapping[str, Any]) -> bytes | None:
    """``canonical_bytes(row, fresh=True)`` from a row's static ``parts`` and its per-row values
    (None when one of them is not of the template's type)."""
    created, duration, seq = row["created_at"], row["new_values"]["duration_ms"], row["seq"]
    if type(duration) is not int or type(seq) is not int or type(created) is not dt.datetime or created.tzinfo:
        return None
    esc = encode_basestring_ascii
    request_id = row["request_id"]
    try:
        return (
            f'{parts[0]}{esc(row["chain_id"])},"created_at":{esc(created.isoformat(sep="T", timespec="microseconds"))},'
            f'"id":{esc(row["id"])}{parts[1]}{int.__repr__(duration)}{parts[2]}{esc(row["prev_hash"])}'
            f"{parts[3]}{'null' if request_id is None else esc(request_id)}{parts[4]}{int.__repr__(seq)}{parts[5]}"
        ).encode("ascii")
    except TypeError:
        return None


def _request_canonical(row: Mapping[str, Any]) -> bytes | None:
    """``canonical_bytes(row, fresh=True)`` for a request row, written without building the dict
    and walking it (half of what signing a row costs); None when ``row`` has another shape."""
    parts = request_parts(row)
    return None if parts is None else compose_request(parts, row)


def fresh_canonical_bytes(row: Mapping[str, Any]) -> bytes:
    """``canonical_bytes(row, fresh=True)``, by the request-row template when ``row`` fits it."""
    data = _request_canonical(row)
    return canonical_bytes(row, fresh=True) if data is None else data


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
