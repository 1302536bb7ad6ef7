"""``enterprise.security.rate_limiting``: limits per key, user, IP and route, on the ``limits`` library."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tframex_asgi.errors import ConfigError

__all__ = ["RateLimitConfig"]


def _check_limit(value: str, path: str) -> None:
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(path, f"not a rate limit such as '100/minute': {value!r}") from None


@dataclass(frozen=True)
class RateLimitConfig:
    enabled: bool = False
    storage: str = "memory://"
    strategy: Literal["moving-window", "fixed-window", "sliding-window-counter"] = "moving-window"
    default: str = "100/minute"
    # What a client is counted by, most specific first: the first one present wins.
    key_by: tuple[Literal["api_key", "user", "ip"], ...] = ("api_key", "user", "ip")
    # Role -> limit (the highest tier among a caller's roles applies).
    tiers: Mapping[str, str] = field(default_factory=dict)
    # "METHOD /template" or "/template" -> limit.
    routes: Mapping[str, str] = field(default_factory=dict)
    # Cost-based limit counted after a run finishes, e.g. tokens per minute.
    tokens: str | None = None
    fail_open: bool = True
    timeout: float = 0.25
    auth_failures: str = "10/minute"
    headers_on_success: bool = True
    key_prefix: str = "tframex-rl"

    @staticmethod
    def _shorthand(value: Any, path: str) -> Mapping[str, Any]:
        if isinstance(value, bool):
            return {"enabled": value}
        raise ConfigError(path, f"expected a mapping or true/false, got {value!r}")

    def _check(self, path: str) -> None:
        _check_limit(self.default, f"{path}.default")
        _check_limit(self.auth_failures, f"{path}.auth_failures")
        if self.tokens is not None:
            _check_limit(self.tokens, f"{path}.tokens")
        for role, limit in self.tiers.items():
            _check_limit(limit, f"{path}.tiers.{role}")
        for route, limit in self.routes.items():
            _check_limit(limit, f"{path}.routes.{route}")
        scheme = self.storage.split(":", 1)[0]
        if scheme not in ("memory", "redis", "rediss", "async+redis"):
            raise ConfigError(f"{path}.storage", f"unsupported scheme {scheme!r} (memory://, redis://)")
        if self.timeout <= 0:
            raise ConfigError(f"{path}.timeout", "must be greater than 0")
