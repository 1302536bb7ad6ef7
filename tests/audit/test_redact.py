"""Redaction and escaping: secrets never survive, control characters never reach a row raw."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from hypothesis import given
from hypothesis import strategies as st

from tframex_asgi.audit.redact import REDACTED, Redactor, escape_text, truncate


def test_escape_text_makes_one_line() -> None:
    assert escape_text("a\r\nb\tc\x00d\x7f\u2028") == "a\\r\\nb\\tc\\x00d\\x7f\\u2028"
    # A literal backslash-n is escaped too, so it cannot pass for an escaped newline.
    assert escape_text("forged \\n line") == "forged \\\\n line"


@given(st.text())
def test_escape_text_never_leaves_control_characters(text: str) -> None:
    out = escape_text(text)
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in out)


def test_sensitive_keys_are_redacted_at_any_depth() -> None:
    r = Redactor(["ssn"])
    value = {
        "username": "alice",
        "Password": "hunter2",
        "nested": {"X-API-Key": "k-123", "github_token": "t-1", "list": [{"client_secret": "s"}]},
        "SSN": "123-45-6789",
        "prompt_tokens": 12,
    }
    out = r.sanitize(value)
    text = json.dumps(out)
    for secret in ("hunter2", "k-123", "t-1", '"s"', "123-45-6789"):
        assert secret not in text
    assert out["username"] == "alice"
    assert out["prompt_tokens"] == 12
    assert out["Password"] == REDACTED


def test_credential_shaped_values_are_redacted_whatever_the_key() -> None:
    r = Redactor()
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    out = r.sanitize({"note": "Bearer abc.def", "other": jwt, "basic": "Basic dXNlcjpwYXNz", "ok": "bearer"})
    assert out == {"note": REDACTED, "other": REDACTED, "basic": REDACTED, "ok": "bearer"}


def test_sanitize_makes_values_json_safe_and_stable() -> None:
    r = Redactor()
    out = r.sanitize(
        {
            "when": dt.datetime(2026, 1, 2, 3, 4, 5),
            "id": uuid.UUID(int=1),
            "f": 2.0,
            "g": 0.5,
            "nan": float("nan"),
            "big": 2**70,
            "raw": b"xyz",
            "s": {"b", "a"},
            "line": "a\nb",
        }
    )
    json.dumps(out, allow_nan=False)
    assert out["f"] == 2 and isinstance(out["f"], int)
    assert out["g"] == "0.5" and out["nan"] == "nan" and out["big"] == str(2**70)
    assert out["raw"] == "[3 bytes]" and out["s"] == ["a", "b"] and out["line"] == "a\\nb"


def test_query_values_of_sensitive_parameters_are_redacted() -> None:
    r = Redactor(["ssn"])
    q = r.query(b"token=abc123&page=2&access_token=zzz&ssn=999&q=Bearer%20xyz&x=%0d%0aInjected")
    assert "abc123" not in q and "zzz" not in q and "999" not in q and "xyz" not in q
    assert "page=2" in q
    assert "\r" not in q and "\n" not in q


def test_mask_redacts_without_escaping() -> None:
    r = Redactor()
    assert r.mask({"password": "x", "path": "a\\b", "l": [{"token": "t"}]}) == {
        "password": REDACTED,
        "path": "a\\b",
        "l": [{"token": REDACTED}],
    }


def test_truncate() -> None:
    assert truncate("abcdef", 5) == "ab..."
    assert truncate("abc", 5) == "abc"
    assert truncate(None, 5) is None
