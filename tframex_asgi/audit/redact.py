"""Redaction and escaping: nothing secret and no control character ever reaches an audit row.

Every value the audit logger writes goes through :func:`sanitize` (JSON values) or
:meth:`Redactor.text` (text columns). Redaction is by key name (the defaults below plus
``audit.redact_fields``) and by value shape, so a secret under an unexpected key name, or inside
a longer text (``User-Agent: bot/1.0 Bearer <JWT>``), is still caught when it looks like a
credential: see :func:`scrub`. The server's log lines go through the same :func:`scrub`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

__all__ = ["REDACTED", "SENSITIVE_KEYS", "Redactor", "escape_text", "scrub", "truncate"]

REDACTED = "[REDACTED]"

# Exact key names (normalised: lower case, '-' -> '_') that always hold secrets.
SENSITIVE_KEYS = frozenset(
    {
        "authorization", "proxy_authorization", "cookie", "set_cookie", "x_api_key", "api_key", "apikey", "key",
        "password", "passwd", "pwd", "new_password", "old_password", "password_hash", "key_hash", "secret",
        "client_secret", "token", "access_token", "refresh_token", "id_token", "session", "session_id",
        "sessionid", "csrf_token", "private_key", "credentials", "credential", "signature", "sig", "code",
        "assertion", "client_assertion", "otp", "pin",
    }
)  # fmt: skip
# Suffixes catching the rest of the family (user_password, github_token, aws_secret, signing_key).
_SENSITIVE_SUFFIXES = ("_password", "_passwd", "_secret", "_token", "_key", "_apikey", "_credentials", "_cookie")
# Values that are credentials whatever their key: auth schemes and compact JWS/JWE.
_SECRET_VALUE = re.compile(
    r"^\s*(?:(?:bearer|basic|digest|negotiate|token|apikey)\s+\S+|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.)",
    re.IGNORECASE,
)
# Credentials inside a longer text, by shape. One alternation, so a text is scanned once:
#   auth  - "Bearer <token>" / "Basic <base64>" (the scheme is kept, the credential goes);
#   jwt   - compact JWS (3 parts) and JWE (5 parts): base64url JSON headers start with "eyJ";
#   key   - our API keys, tfx_<12 hex id>_<43 chars secret>: the public id is kept as evidence;
#   url   - the password of a URL's userinfo (redis://:pw@host, postgresql://u:pw@host);
#   blob  - a long base64/base64url/hex run, judged by _is_blob (entropy-like, not a path).
_SHAPES = re.compile(
    r"(?P<auth>(?<![A-Za-z0-9])(?:bearer|basic)\s+)(?P<cred>[A-Za-z0-9._~+/-]{6,}=*)"
    r"|(?P<jwt>eyJ[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]*){2,4})"
    r"|(?P<key>tfx_(?P<kid>[0-9a-f]{12}_)?[A-Za-z0-9_-]{16,})"
    r"|(?P<url>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+(?=@)"
    r"|(?P<blob>(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{32,}=*(?![A-Za-z0-9+/_=-]))",
    re.IGNORECASE,
)
_HEX = re.compile(r"[0-9a-fA-F]+")
# The common text holds none of the shapes: substring tests and one run search (~10x cheaper
# than _SHAPES) tell so first.
_LONG_RUN = re.compile(r"[A-Za-z0-9+/_=-]{32}")
_MARKERS = ("eyJ", "tfx_", "://")
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0, DEL, C1 and the Unicode line/paragraph separators that log viewers treat as newlines.
_CONTROL = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MAX_DEPTH = 12
_MAX_INT = 2**53


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    known = _ESCAPES.get(ch)
    if known is not None:
        return known
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_text(value: str) -> str:
    """Backslash-escape control characters (CR/LF included) and backslash itself, so one record
    is always one line and a forged ``\\n`` cannot be told apart from an escaped one."""
    return _CONTROL.sub(_escape_char, value)


def _is_blob(run: str) -> bool:
    """A long run that is a secret rather than a word or an identifier: hex with a letter (not
    a number), or base64 mixing upper case, lower case and digits."""
    core = run.rstrip("=")
    if len(core) < 32:
        return False
    if _HEX.fullmatch(core):
        return not core.isdigit()
    return any(c.isupper() for c in core) and any(c.islower() for c in core) and any(c.isdigit() for c in core)


def _is_basic(blob: str) -> bool:
    """Whether ``Basic <blob>`` is a credential: base64 of ``user:password``."""
    try:
        return b":" in base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False


def _replace_shape(match: re.Match[str]) -> str:
    auth = match.group("auth")
    if auth is not None:
        if auth[:5].lower() == "basic" and not _is_basic(match.group("cred")):
            return match.group()  # "Basic authentication" is prose, not a credential
        return auth + REDACTED
    if match.group("key") is not None:
        return "tfx_" + (match.group("kid") or "") + REDACTED
    if match.group("url") is not None:
        return match.group("url") + REDACTED
    if match.group("blob") is not None:
        run = match.group()
        if "/" in run:  # a path: judge each segment (/v1/chat/completions is no secret)
            return "/".join(REDACTED if _is_blob(part) else part for part in run.split("/"))
        return REDACTED if _is_blob(run) else run
    return REDACTED


def scrub(text: str) -> str:
    """``text`` with every credential-shaped part replaced (see ``_SHAPES``); no escaping."""
    if not any(m in text for m in _MARKERS) and _LONG_RUN.search(text) is None:
        lower = text.lower()
        if "bearer" not in lower and "basic" not in lower:
            return text
    return _SHAPES.sub(_replace_shape, text)


def truncate(value: str | None, limit: int) -> str | None:
    """Cut to a column's width (PostgreSQL rejects the whole batch on an over-long value)."""
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 3] + "..."


def _norm(key: str) -> str:
    return key.strip().lower().replace("-", "_")


class Redactor:
    """Redacts by key name (defaults plus ``extra_fields``) and by credential-shaped values."""

    def __init__(self, extra_fields: Iterable[str] = ()) -> None:
        self.keys = SENSITIVE_KEYS | {_norm(f) for f in extra_fields}

    def is_sensitive_key(self, key: str) -> bool:
        norm = _norm(key)
        return norm in self.keys or norm.endswith(_SENSITIVE_SUFFIXES)

    def text(self, value: str) -> str:
        """A free-text value: wholly redacted when it is a credential, credential-shaped parts
        redacted when it holds one, always escaped."""
        return REDACTED if _SECRET_VALUE.match(value) else escape_text(scrub(value))

    def sanitize(self, value: Any, _depth: int = 0) -> Any:
        """A JSON-safe, redacted, escaped copy of ``value``.

        Floats become ints when integral and strings when not representable exactly, so the
        value reads back from JSONB/SQLite identical (the row hash depends on it).
        """
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value if -_MAX_INT < value < _MAX_INT else str(value)
        if isinstance(value, float):
            if math.isfinite(value) and value.is_integer() and abs(value) < _MAX_INT:
                return int(value)
            return repr(value)
        if isinstance(value, str):
            return self.text(value)
        if _depth >= _MAX_DEPTH:
            return "[TRUNCATED]"
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for k, v in value.items():
                key = escape_text(str(k))
                out[key] = REDACTED if self.is_sensitive_key(str(k)) and v is not None else self.sanitize(v, _depth + 1)
            return out
        if isinstance(value, list | tuple | set | frozenset):
            items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
            return [self.sanitize(v, _depth + 1) for v in items]
        if isinstance(value, dt.datetime | dt.date):
            return value.isoformat()
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, bytes | bytearray):
            return f"[{len(value)} bytes]"
        return self.text(str(value))

    def mask(self, value: Any, _depth: int = 0) -> Any:
        """``value`` with sensitive keys redacted, nothing else changed (for reading rows back)."""
        if isinstance(value, Mapping) and _depth < _MAX_DEPTH:
            return {
                k: REDACTED if self.is_sensitive_key(str(k)) and v is not None else self.mask(v, _depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list) and _depth < _MAX_DEPTH:
            return [self.mask(v, _depth + 1) for v in value]
        if isinstance(value, str):
            return REDACTED if _SECRET_VALUE.match(value) else scrub(value)
        return value

    def query(self, raw: bytes | str) -> str:
        """A query string with the values of sensitive parameters redacted."""
        text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        if not text:
            return ""
        parts = []
        for name, val in parse_qsl(text, keep_blank_values=True):
            shown = REDACTED if self.is_sensitive_key(name) or _SECRET_VALUE.match(val) else scrub(val)
            parts.append(f"{quote(name, safe='')}={quote(shown, safe='[]')}")
        # Percent-encoding already removed control characters; escape anyway for unparsable input.
        return escape_text("&".join(parts))
