"""Which limits apply to a request, and under which storage key.

Config strings become :class:`Policy` objects once, at build time; per request we only pick
among them. A client is counted by the first of ``key_by`` that the request has (API key id, user
id, client IP); its limit is the most generous tier among its roles, else ``default``. Route limits
are counted per client and route template; the token budget per client.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from limits import RateLimitItem, parse_many

from tframex_asgi.config.ratelimit import RateLimitConfig
from tframex_asgi.paths import RouteTable, normalize_path
from tframex_asgi.types import Scope
from tframex_asgi.util import memo_put

__all__ = ["Check", "Policy", "Rules", "client_identity", "parse_policies"]

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True, slots=True)
class Policy:
    """One limit as reported in ``RateLimit-Policy``: a name, a quota and a window."""

    name: str
    item: RateLimitItem
    # Its RateLimit-Policy list member ('"name";q=100;w=60'), rendered once.
    field: str = dataclasses.field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.field:
            rendered = f'"{self.name}";q={int(self.item.amount)};w={int(self.item.get_expiry())}'
            object.__setattr__(self, "field", rendered)

    @property
    def quota(self) -> int:
        return int(self.item.amount)

    @property
    def window(self) -> int:
        return int(self.item.get_expiry())

    @property
    def rate(self) -> float:
        return self.item.amount / self.item.get_expiry()


class Check(NamedTuple):
    """A policy bound to the storage key of one request (a tuple: built on every request)."""

    policy: Policy
    key: tuple[str, ...]
    strategy: str | None = None  # None: the configured strategy


def parse_policies(name: str, limit: str) -> tuple[Policy, ...]:
    """``"10/second;100/minute"`` -> one policy per item; names stay unique by adding the window."""
    # Names go into a structured-field string: keep them to a safe, quote-free alphabet.
    base = _UNSAFE_NAME.sub("_", name) or "limit"
    items = parse_many(limit)
    if len(items) == 1:
        return (Policy(base, items[0]),)
    names: set[str] = set()
    out = []
    for item in items:
        label = f"{base}-{item.get_expiry()}s"
        while label in names:
            label += "x"
        names.add(label)
        out.append(Policy(label, item))
    return tuple(out)


def _escape(part: str) -> str:
    # limits joins identifiers with "/": escape it so two ids can never form the same key.
    if "%" not in part and "/" not in part:
        return part
    return part.replace("%", "%25").replace("/", "%2F")


def client_identity(scope: Scope, key_by: Iterable[str]) -> str:
    """The counted identity: ``k:<api key id>``, ``u:<user id>`` or ``ip:<address>``."""
    user = scope.get("user")
    authenticated = bool(getattr(user, "is_authenticated", False))
    for kind in key_by:
        if kind == "api_key" and authenticated:
            key_id = getattr(user, "api_key_id", None)
            if key_id:
                return f"k:{key_id}"
        elif kind == "user" and authenticated:
            user_id = getattr(user, "id", None) or getattr(user, "identity", None)
            if user_id:
                return f"u:{user_id}"
        elif kind == "ip":
            ip = _client_ip(scope)
            if ip:
                return f"ip:{ip}"
    # Nothing configured identifies this request (say key_by=["user"] on a public path):
    # count it by address rather than not at all.
    ip = _client_ip(scope)
    return f"ip:{ip}" if ip else "anonymous"


def _client_ip(scope: Scope) -> str | None:
    state = scope.get("tframex")
    if state is not None and "client_ip" in state:
        # Resolved once by the context layer through the trusted proxies.
        ip = state["client_ip"]
        return str(ip) if ip else None
    client = scope.get("client")
    return str(client[0]) if client else None


class Rules:
    """The configured policies, resolved for one request by :meth:`checks`."""

    def __init__(self, cfg: RateLimitConfig) -> None:
        self.key_by = tuple(cfg.key_by)
        self.default = parse_policies("default", cfg.default)
        self.tiers: Mapping[str, tuple[Policy, ...]] = {
            role: parse_policies(role, limit) for role, limit in cfg.tiers.items()
        }
        # The value keeps the rule text: "GET /x" and "POST /x" are counted apart.
        self.routes: RouteTable[tuple[str, tuple[Policy, ...]]] = RouteTable(
            {route: (" ".join(route.split()), parse_policies("route", limit)) for route, limit in cfg.routes.items()}
        )
        self.tokens = parse_policies("tokens", cfg.tokens) if cfg.tokens else ()
        self.token_strategy = cfg.token_strategy
        self.token_routes: RouteTable[bool] = RouteTable(dict.fromkeys(cfg.token_routes, True))
        self.needs_path = bool(len(self.routes) or self.tokens)
        self._tier_cache: dict[frozenset[str], tuple[Policy, ...]] = {}

    def client_policies(self, user: Any) -> tuple[Policy, ...]:
        roles = getattr(user, "roles", None) if getattr(user, "is_authenticated", False) else None
        if not self.tiers or not roles:
            return self.default
        if isinstance(roles, frozenset):
            # A handful of role sets in practice; each resolved once (bounded all the same).
            cached = self._tier_cache.get(roles)
            if cached is None:
                cached = memo_put(self._tier_cache, roles, self._best_tier(roles), 1024)
            return cached
        return self._best_tier(roles)

    def _best_tier(self, roles: Iterable[str]) -> tuple[Policy, ...]:
        best: tuple[Policy, ...] | None = None
        for role in roles or ():
            tier = self.tiers.get(role)
            # The most generous tier wins, judged by its most restrictive item.
            if tier is not None and (best is None or _rate(tier) > _rate(best)):
                best = tier
        return best or self.default

    def checks(self, scope: Scope) -> tuple[list[Check], list[Check]]:
        """``(hits, token_checks)``: limits to consume now, and token budgets to test now and
        charge after the response. Route limits come first so that their rejections do not also
        spend the client's general budget."""
        client = _escape(client_identity(scope, self.key_by))
        if not self.needs_path:  # no route limits, no token budget: the client's own limits only
            key = ("c", client)
            return [Check(p, key) for p in self.client_policies(scope.get("user"))], []
        hits: list[Check] = []
        tokens: list[Check] = []
        # A malformed path matches no template (authorization answers it with 400 bad_path);
        # the client's own limit still counts it.
        path = normalize_path(scope) if self.needs_path else None
        if path is not None:
            method = str(scope.get("method", "GET")).upper()
            matched = self.routes.match(method, path) if len(self.routes) else None
            if matched is not None:
                rule, policies = matched[1]
                hits.extend(Check(p, ("r", _escape(rule), client)) for p in policies)
            if self.tokens and self.token_routes.match(method, path) is not None:
                tokens = [Check(p, ("t", client), self.token_strategy) for p in self.tokens]
        hits.extend(Check(p, ("c", client)) for p in self.client_policies(scope.get("user")))
        return hits, tokens


def _rate(policies: tuple[Policy, ...]) -> float:
    return min(p.rate for p in policies)
