"""Canonical JSON of an audit row: the bytes its hash covers, the same from every backend.

Values are canonicalised so a row reads back with the same hash from every backend: UUIDs and
INET values as text, timestamps as naive UTC ISO with microseconds, JSON columns parsed, integral
floats as ints. The bytes are ``json.dumps(canonical(row), sort_keys=True, separators=(",", ":"),
ensure_ascii=True)``; the rows the logger builds for requests are written by a template
(:func:`request_parts` and :func:`compose_request`) that gives the same bytes without building
the dict and walking it. tests/audit/test_canonical.py checks both against ``json.dumps``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import uuid
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii
from typing import Any

__all__ = [
    "HASHED_COLUMNS",
    "RequestParts",
    "canon_json",
    "canonical",
    "canonical_bytes",
    "compose_request",
    "fresh_canonical_bytes",
    "request_parts",
]

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


def canon_json(value: Any) -> Any:
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
            value = canon_json(value)
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
