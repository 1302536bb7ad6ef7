"""Small pure helpers that turn request facts into column values of an audit row."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from tframex_asgi.types import Scope

__all__ = [
    "OPERATIONAL_REASONS",
    "SECURITY_STATUSES",
    "client_address",
    "header",
    "is_security",
    "outcome",
    "user_id_of",
]

# Rejections that are always audited, whatever the level, with the reason used when no layer said one.
SECURITY_STATUSES: dict[int, str] = {
    401: "unauthenticated",
    403: "forbidden",
    413: "payload_too_large",
    429: "rate_limited",
}


# Reasons the audit layer itself gives to requests that failed, not were refused: no denial.
OPERATIONAL_REASONS = frozenset({"internal_error", "cancelled", "no_response"})


def is_security(status: int, reason: str | None) -> bool:
    """A refusal by a security layer (or a security status from the app)."""
    return status in SECURITY_STATUSES or (bool(reason) and reason not in OPERATIONAL_REASONS)


def outcome(status: int, reason: str | None) -> str:
    """The ``status`` column: success, denied (a security rejection), failure (4xx) or error (5xx)."""
    if status >= 500:
        return "error"
    if status >= 400 and is_security(status, reason):
        return "denied"
    return "failure" if status >= 400 else "success"


def client_address(value: Any) -> str | None:
    # INET rejects anything that is not an address ("testclient" from Starlette's TestClient).
    if not value:
        return None
    try:
        return ipaddress.ip_address(str(value)).compressed
    except ValueError:
        return None


def user_id_of(principal: Any) -> str | None:
    # user_id references users(id): external identities (token subjects) have no users row.
    if principal is None or not getattr(principal, "is_authenticated", False) or getattr(principal, "external", False):
        return None
    try:
        return str(uuid.UUID(str(getattr(principal, "id", ""))))
    except ValueError:
        return None


def header(scope: Scope | None, name: bytes) -> str | None:
    if scope is None:
        return None
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None
