"""Small pure helpers that turn request facts into column values of an audit row.

The request path only *captures* a request (:class:`RequestCapture`: a named tuple of immutable
values read from the scope); every row is built from it later, off the request path.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any, NamedTuple

from tframex_asgi.types import Scope

__all__ = [
    "OPERATIONAL_REASONS",
    "SECURITY_STATUSES",
    "RequestCapture",
    "capture_request",
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


class RequestCapture(NamedTuple):
    """What the request path keeps of one request: references to immutable values, nothing computed."""

    created: float  # wall-clock seconds
    method: Any
    path: Any
    raw_path: Any
    root_path: Any
    normalize: bool  # True: ``path`` is the scope's, normalised when the row is built; False: final
    query: Any  # the raw query string
    route: Any
    status: int
    duration_ms: int
    reason: str | None
    principal: Any
    ip: Any  # the client address
    user_agent: bytes | None  # the raw header value
    request_id: Any


# tuple.__new__ directly: the generated RequestCapture(...) constructor is a Python-level call,
# which would cost the request path more than the rest of capture_request.
_new_capture = tuple.__new__


def capture_request(
    scope: Scope,
    state: Any,
    created: float,
    status: int,
    duration_ms: int,
    reason: str | None,
    route: Any,
    path: str | None,
) -> RequestCapture:
    """The capture of one request: references to immutable values only, nothing computed.

    ``state`` is ``scope["tframex"]`` (or an empty mapping); ``path`` None means the scope's
    path, normalised when the row is built.
    """
    ua: bytes | None = None
    for key, value in scope.get("headers", ()):
        if key == b"user-agent":
            ua = bytes(value)
            break
    if "client_ip" in state:
        ip = state.get("client_ip")
    else:
        client = scope.get("client")
        ip = client[0] if client else None
    return _new_capture(
        RequestCapture,
        (
            created,
            scope.get("method", ""),
            scope.get("path", "") if path is None else path,
            scope.get("raw_path"),
            scope.get("root_path", ""),
            path is None,
            scope.get("query_string", b""),
            route,
            status,
            duration_ms,
            reason,
            state.get("principal") or scope.get("user"),
            ip,
            ua,
            state.get("request_id"),
        ),
    )


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
