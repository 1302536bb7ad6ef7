"""``enterprise.security.rate_limiting``: limits per key, user, IP and route, on the ``limits`` library."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from tframex_asgi.catalog.routes import DEFAULT_PUBLIC_PATHS, RuleSet
from tframex_asgi.config._parse import Section
from tframex_asgi.errors import ConfigError

__all__ = ["RateLimitConfig"]

Strategy = Literal["moving-window", "fixed-window", "sliding-window-counter"]
# The endpoint's routes that run an LLM and report state["usage"].
DEFAULT_TOKEN_ROUTES = (
    "POST /agents/{name}/run",
    "POST /flows/{name}/run",
    "POST /v1/chat/completions",
    "POST /v1/responses",
)


def _check_limit(value: str, path: str) -> None:
    from limits import parse_many

    try:
        items = parse_many(value)
    except ValueError:
        raise ConfigError(path, f"not a rate limit such as '100/minute': {value!r}") from None
    if not items or any(item.amount < 1 for item in items):
        raise ConfigError(path, f"a limit must allow at least 1: {value!r}")


def _check_routes(routes: Iterable[str], path: str) -> None:
    """Each rule well formed, and no two matching the same requests (as the route table wants)."""
    rules = RuleSet()
    for route in routes:
        try:
            rules.add(route)
        except ValueError as exc:
            raise ConfigError(path, str(exc)) from None


@dataclass(frozen=True)
class RateLimitConfig(Section):
    _path: ClassVar[str] = "enterprise.security.rate_limiting"

    # Turn the rate-limit layer on; the failed-authentication guard (auth_failures) runs only
    # while it is on.
    enabled: bool = False
    # memory:// (one process) or redis://host:port/db, rediss://... (shared by every worker).
    storage: str = "memory://"
    # Algorithm of the default, tiers, routes and auth_failures limits: moving-window (exact, one
    # timestamp per hit), fixed-window (one counter per window; the only one lease accepts) or
    # sliding-window-counter (this and the previous window's counters, weighted).
    strategy: Strategy = "moving-window"
    # One or more limits ("10/second;100/minute"): all of them apply.
    default: str = "100/minute"
    # What a client is counted by, most specific first: the first one present wins.
    key_by: tuple[Literal["api_key", "user", "ip"], ...] = ("api_key", "user", "ip")
    # Role -> limit (the most generous tier among a caller's roles replaces the default).
    tiers: dict[str, str] = field(default_factory=dict)
    # "METHOD /template" or "/template" -> limit, counted per client and route template.
    routes: dict[str, str] = field(default_factory=dict)
    # Cost-based limit counted after a run finishes, e.g. "100000/hour" tokens per client.
    tokens: str | None = None
    # Algorithm of the `tokens` budget (the same choices as strategy). The moving window stores one
    # entry per unit of cost (a list of up to N timestamps per client for "N/hour" tokens), so
    # token budgets default to the O(1) sliding window counter.
    token_strategy: Strategy = "sliding-window-counter"  # noqa: S105 - a strategy name, not a secret
    # Routes ("METHOD /template") the `tokens` budget applies to: a client whose budget is spent is
    # refused before the run, and the run's reported token usage is charged after the response.
    token_routes: tuple[str, ...] = DEFAULT_TOKEN_ROUTES
    # Storage down or slow: let requests through (True) or answer 503 (False).
    fail_open: bool = True
    # Seconds one storage call may take (connect, wait for a pooled connection, command).
    timeout: float = 0.25
    # After a storage failure, skip the storage for this many seconds instead of waiting again.
    cooldown: float = 1.0
    # Connections in the process-wide blocking pool (redis:// only).
    max_connections: int = 64
    # Failed authentications per client IP before authentication answers 429.
    auth_failures: str = "10/minute"
    # Add the RateLimit-Policy and RateLimit headers to allowed responses too (a 429 always has
    # them, with Retry-After); false also spares the window reads they need.
    headers_on_success: bool = True
    # Never counted (load balancer health checks).
    exempt_paths: tuple[str, ...] = DEFAULT_PUBLIC_PATHS
    # Prefix of every counter key in Redis (`<key_prefix>:LIMITER/...`), so deployments can share
    # one Redis; non-empty, no spaces. Not used with memory://.
    key_prefix: str = "tframex-rl"
    # 0: exact admission (one Redis script per limit per request). N > 0: each process takes up to
    # N units of a fixed window at once and admits from them locally; never over the limit, and
    # at most processes * (N - 1) under it per window (docs/rate-limiting.md, "Lease mode").
    lease: int = 0

    @staticmethod
    def _shorthand(value: Any, path: str) -> dict[str, Any]:
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
            _check_routes([route], f"{path}.routes.{route}")
            _check_limit(limit, f"{path}.routes.{route}")
        _check_routes(self.routes, f"{path}.routes")
        _check_routes(self.token_routes, f"{path}.token_routes")
        scheme = self.storage.split(":", 1)[0]
        if scheme not in ("memory", "redis", "rediss", "async+redis", "async+rediss"):
            raise ConfigError(f"{path}.storage", f"unsupported scheme {scheme!r} (memory://, redis://, rediss://)")
        if self.timeout <= 0:
            raise ConfigError(f"{path}.timeout", "must be greater than 0")
        if self.cooldown < 0:
            raise ConfigError(f"{path}.cooldown", "must not be negative")
        if self.max_connections < 1:
            raise ConfigError(f"{path}.max_connections", "must be at least 1")
        if not self.key_by:
            raise ConfigError(f"{path}.key_by", "needs at least one of api_key, user, ip")
        self._check_lease(f"{path}.lease", scheme)
        if not self.key_prefix or any(c.isspace() for c in self.key_prefix):
            raise ConfigError(f"{path}.key_prefix", "must be a non-empty string without spaces")

    def _check_lease(self, path: str, scheme: str) -> None:
        # The section has checked the type already (an int, not a bool).
        if self.lease < 0:
            raise ConfigError(path, f"must be 0 (off) or more: {self.lease!r}")
        if not self.lease:
            return
        if scheme.removeprefix("async+") not in ("redis", "rediss"):
            raise ConfigError(path, "needs a redis:// or rediss:// storage (memory:// is exact already): set lease: 0")
        if self.strategy != "fixed-window":
            # A moving window's units expire one by one from when they were taken: a leased unit
            # spent late would count for less than a window, so leasing would over-admit.
            fix = "set strategy: fixed-window or lease: 0"
            raise ConfigError(path, f"supports strategy fixed-window only, not {self.strategy!r}: {fix}")
