"""The IETF ``RateLimit`` / ``RateLimit-Policy`` fields (draft-ietf-httpapi-ratelimit-headers) and
``Retry-After``.

Emitted as structured-field lists, one item per applied policy::

    RateLimit-Policy: "default";q=100;w=60
    RateLimit: "default";r=42;t=17

``q`` quota, ``w`` window (seconds), ``r`` remaining, ``t`` seconds until the quota resets.
Policy names come from :func:`tframex_asgi.ratelimit.policy.parse_policies` and never contain
quotes or backslashes, so they need no escaping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tframex_asgi.ratelimit.policy import Policy
from tframex_asgi.ratelimit.protocol import WindowState

__all__ = ["delta_seconds", "rate_limit_headers", "retry_after_header"]

Header = tuple[bytes, bytes]


def delta_seconds(seconds: float) -> int:
    """Whole seconds, rounded up: a client that waits this long is never early."""
    return math.ceil(seconds) if seconds > 0 else 0


def rate_limit_headers(windows: Sequence[tuple[Policy, WindowState]]) -> list[Header]:
    if not windows:
        return []
    if len(windows) == 1:  # the common case: no joins
        p, w = windows[0]
        return [
            (b"ratelimit-policy", p.field.encode("ascii")),
            (b"ratelimit", f'"{p.name}";r={w.remaining};t={delta_seconds(w.reset)}'.encode("ascii")),
        ]
    policy = ", ".join(p.field for p, _ in windows)
    state = ", ".join(f'"{p.name}";r={w.remaining};t={delta_seconds(w.reset)}' for p, w in windows)
    return [(b"ratelimit-policy", policy.encode("ascii")), (b"ratelimit", state.encode("ascii"))]


def retry_after_header(seconds: float) -> Header:
    # At least 1: "Retry-After: 0" invites an immediate retry that would be refused again.
    return (b"retry-after", str(max(1, delta_seconds(seconds))).encode("ascii"))
