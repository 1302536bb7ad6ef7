"""The canonical JSON encoder: what it writes, what survives a backend round trip, and the request-row template."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.audit.test_chain import make_chain
from tframex_asgi.audit.canonical import (
    HASHED_COLUMNS,
    canonical,
    canonical_bytes,
    compose_request,
    fresh_canonical_bytes,
    request_parts,
)
from tframex_asgi.audit.chain import ChainSigner

# What the logger puts in JSON columns: sanitize() leaves no floats, ints within +-2**53.
_SCALARS = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_MOMENTS = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1))


@st.composite
def fresh_rows(draw: st.DrawFn) -> dict[str, Any]:
    """Rows of any shape as the logger hands them to the signer (before the backend sees them)."""
    text = st.none() | st.text(max_size=30)
    return {
        "id": str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
        "chain_id": uuid.UUID(int=draw(st.integers(0, 2**128 - 1))).hex,
        "seq": draw(st.integers(1, 2**62)),
        "prev_hash": draw(st.sampled_from(["0" * 64, "ab" * 32])),
        "action": draw(text),
        "resource_type": draw(text),
        "resource_id": draw(text),
        "old_values": draw(st.none() | st.dictionaries(st.text(max_size=8), _JSON, max_size=4)),
        "new_values": draw(st.none() | st.dictionaries(st.text(max_size=8), _JSON, max_size=4)),
        "ip_address": draw(st.none() | st.sampled_from(["127.0.0.1", "2001:db8::1", "203.0.113.5"])),
        "user_agent": draw(text),
        "created_at": draw(_MOMENTS),
        "status": draw(st.sampled_from(["success", "denied", "failure", "error"])),
        "reason": draw(text),
        "request_id": draw(text),
    }


def _floats(value: Any) -> Any:
    """Integral numbers as a JSONB driver may return them (1 -> 1.0)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value


@settings(max_examples=300, deadline=None)
@given(fresh_rows(), st.booleans())
def test_the_bytes_are_sorted_compact_ascii_json_of_the_hashed_columns(row: dict[str, Any], fresh: bool) -> None:
    data = canonical_bytes(row, fresh=fresh)
    expected = json.dumps(canonical(row, fresh=fresh), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert data == expected.encode("ascii")
    decoded = json.loads(data)
    assert list(decoded) == sorted(HASHED_COLUMNS)
    assert decoded == canonical(row, fresh=fresh)  # nothing lost on the way


@settings(max_examples=300, deadline=None)
@given(fresh_rows(), st.data())
def test_every_backend_representation_gives_the_bytes_of_the_fresh_row(
    row: dict[str, Any], data: st.DataObject
) -> None:
    """What PostgreSQL and SQLite drivers give back: UUID and INET objects, JSON text or floats, aware or ISO times."""
    back = dict(row)
    if data.draw(st.booleans()):
        back["id"] = uuid.UUID(row["id"])
    if row["ip_address"] is not None:
        back["ip_address"] = data.draw(
            st.sampled_from(
                [ipaddress.ip_address(row["ip_address"]), ipaddress.ip_interface(row["ip_address"]), row["ip_address"]]
            )
        )
    for col in ("old_values", "new_values"):
        if row[col] is not None:
            back[col] = data.draw(st.sampled_from([json.dumps(row[col]), _floats(row[col]), row[col]]))
    moment = row["created_at"]
    back["created_at"] = data.draw(
        st.sampled_from([moment.isoformat(sep=" "), moment.replace(tzinfo=dt.UTC), moment.isoformat() + "Z", moment])
    )
    if data.draw(st.booleans()):
        back["seq"] = str(row["seq"])
    assert canonical_bytes(back) == canonical_bytes(row, fresh=True)


_TEXT = st.text(max_size=40) | st.sampled_from(["", "GET", "/a\\b", "é✓", "\ud800x", "\x00\n\u2028", '"q"'])
_MAYBE = st.none() | _TEXT


@st.composite
def request_rows(draw: st.DrawFn) -> dict[str, Any]:
    actor = draw(
        st.none()
        | st.fixed_dictionaries(
            {
                "id": _TEXT,
                "username": _TEXT,
                "auth_method": _MAYBE,
                "api_key_id": _MAYBE,
                "external": st.booleans(),
            }
        )
    )
    values = {
        "method": draw(_TEXT),
        "route": draw(_MAYBE),
        "path": draw(_TEXT),
        "query": draw(_TEXT),
        "status_code": draw(st.integers(0, 999)),
        "duration_ms": draw(st.integers(0, 2**40)),
        "actor": actor,
    }
    return {
        "id": str(uuid.uuid4()),
        "user_id": draw(st.none() | st.just(str(uuid.uuid4()))),
        "chain_id": uuid.uuid4().hex,
        "seq": draw(st.integers(1, 2**62)),
        "prev_hash": draw(st.sampled_from(["0" * 64, "ab" * 32])),
        "action": draw(_TEXT),
        "resource_type": "http",
        "resource_id": draw(_TEXT),
        "old_values": None,
        "new_values": values,
        "created_at": dt.datetime(2026, 1, 1) + dt.timedelta(microseconds=draw(st.integers(0, 10**13))),
        "status": draw(st.sampled_from(["success", "denied", "failure", "error"])),
        "reason": draw(_MAYBE),
        "ip_address": draw(st.none() | st.sampled_from(["127.0.0.1", "2001:db8::1"])),
        "user_agent": draw(_MAYBE),
        "request_id": draw(_MAYBE),
    }


@settings(max_examples=300, deadline=None)
@given(request_rows())
def test_request_template_writes_the_generic_canonical_bytes(row: dict[str, Any]) -> None:
    assert fresh_canonical_bytes(row) == canonical_bytes(row, fresh=True)


@settings(max_examples=300, deadline=None)
@given(request_rows(), request_rows())
def test_static_parts_of_one_row_compose_another_rows_canonical_bytes(
    row: dict[str, Any], other: dict[str, Any]
) -> None:
    """What the logger does for a repeated request shape: parts of the first row, per-row values of the next."""
    parts = request_parts(row)
    assert parts is not None
    dynamic = ("id", "chain_id", "seq", "prev_hash", "created_at", "request_id")
    later = {**row, **{k: other[k] for k in dynamic}}
    later["new_values"] = {**row["new_values"], "duration_ms": other["new_values"]["duration_ms"]}
    assert compose_request(parts, later) == canonical_bytes(later, fresh=True)
    signer, generic = ChainSigner(), ChainSigner(chain_id=None)
    generic.chain_id = signer.chain_id
    assert signer.sign(dict(later), parts)["row_hash"] == generic.sign(dict(later))["row_hash"]


def test_rows_of_another_shape_use_the_generic_path() -> None:
    base = make_chain(1, end=False)[0]
    values = {"method": "GET", "route": None, "path": "/", "query": "", "status_code": 200, "duration_ms": 1}
    odd = [
        dict(base, new_values={**values, "actor": None, "extra": 1}),  # another key
        dict(base, new_values={**values, "actor": None, "status_code": True}),  # a bool is not an int in JSON
        dict(base, new_values={**values, "actor": {"id": "x"}}),  # another actor shape
        dict(base, new_values={**values, "actor": None}, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
        dict(base, new_values={**values, "actor": None}, old_values={"a": 1}),
        dict(base, new_values={**values, "actor": None}, action=None),
        dict(base, new_values={**values, "actor": None}, seq="3"),
        dict(base, new_values={**values, "actor": None, "path": 5}),
    ]
    for row in odd:
        assert fresh_canonical_bytes(row) == canonical_bytes(row, fresh=True)
    for row in make_chain(3):
        assert fresh_canonical_bytes(row) == canonical_bytes(row, fresh=True)
