"""``enterprise.security``: authentication providers, RBAC, and the security layer switches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tframex_asgi.config.audit import AuditConfig
from tframex_asgi.config.ratelimit import RateLimitConfig
from tframex_asgi.errors import ConfigError

__all__ = [
    "APIKeyConfig",
    "AuthProvidersConfig",
    "BasicAuthConfig",
    "JWTConfig",
    "OAuth2Config",
    "RBACConfig",
    "RoleConfig",
    "SecurityConfig",
]

PROVIDER_NAMES = ("api_key", "basic", "jwt", "oauth2")
_PROVIDER_ALIASES = {"apikey": "api_key", "api-key": "api_key", "oidc": "oauth2"}


def _enabled_shorthand(value: Any, path: str) -> Mapping[str, Any]:
    if isinstance(value, bool):
        return {"enabled": value}
    raise ConfigError(path, f"expected a mapping or true/false, got {value!r}")


@dataclass(frozen=True)
class APIKeyConfig:
    enabled: bool = False
    header_name: str = "X-API-Key"
    cache_ttl: float = 30.0

    _shorthand = staticmethod(_enabled_shorthand)


@dataclass(frozen=True)
class BasicAuthConfig:
    enabled: bool = False
    realm: str = "tframex"

    _shorthand = staticmethod(_enabled_shorthand)


@dataclass(frozen=True)
class JWTConfig:
    enabled: bool = False
    algorithms: tuple[str, ...] = ("RS256",)
    secret: str | None = None
    public_key: str | None = None
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway: float = 30.0
    max_token_bytes: int = 8192
    roles_claim: str = "roles"
    scopes_claim: str = "scope"
    username_claim: str = "preferred_username"

    _shorthand = staticmethod(_enabled_shorthand)

    def _check(self, path: str) -> None:
        for i, alg in enumerate(self.algorithms):
            if alg.strip().lower() == "none":
                raise ConfigError(f"{path}.algorithms[{i}]", "'none' is never allowed")
        if self.enabled and not (self.secret or self.public_key or self.jwks_url):
            raise ConfigError(path, "needs one of secret, public_key or jwks_url")


@dataclass(frozen=True)
class OAuth2Config:
    enabled: bool = False
    issuer: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    audience: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    introspection: bool = True
    cache_ttl: float = 60.0
    timeout: float = 5.0
    roles_claim: str = "roles"

    _shorthand = staticmethod(_enabled_shorthand)

    def _check(self, path: str) -> None:
        if self.enabled and not self.issuer:
            raise ConfigError(f"{path}.issuer", "is required when oauth2 is enabled")


@dataclass(frozen=True)
class AuthProvidersConfig:
    api_key: APIKeyConfig = field(default_factory=APIKeyConfig)
    basic: BasicAuthConfig = field(default_factory=BasicAuthConfig)
    jwt: JWTConfig = field(default_factory=JWTConfig)
    oauth2: OAuth2Config = field(default_factory=OAuth2Config)
    # Order in which providers are tried; defaults to the order they are listed.
    order: tuple[str, ...] = ()

    _aliases: ClassVar[dict[str, str]] = dict(_PROVIDER_ALIASES)

    @staticmethod
    def _shorthand(value: Any, path: str) -> Mapping[str, Any]:
        # The seed's kwargs form: auth_providers=["oauth2", "api_key"].
        if isinstance(value, list | tuple):
            out: dict[str, Any] = {}
            for i, raw in enumerate(value):
                name = _PROVIDER_ALIASES.get(raw, raw) if isinstance(raw, str) else raw
                if name not in PROVIDER_NAMES:
                    raise ConfigError(f"{path}[{i}]", f"unknown auth provider {raw!r} ({', '.join(PROVIDER_NAMES)})")
                out[name] = {"enabled": True}
            out["order"] = list(out)
            return out
        raise ConfigError(path, f"expected a mapping or a list of provider names, got {value!r}")

    @staticmethod
    def _prepare(value: Mapping[str, Any], path: str) -> Mapping[str, Any]:
        # Without an explicit order, providers are tried in the order they are listed.
        if "order" in value:
            return value
        listed = [_PROVIDER_ALIASES.get(k, k) for k in value]
        return {**value, "order": [k for k in listed if k in PROVIDER_NAMES]}

    def _check(self, path: str) -> None:
        for i, name in enumerate(self.order):
            if name not in PROVIDER_NAMES:
                raise ConfigError(f"{path}.order[{i}]", f"unknown auth provider {name!r}")

    @property
    def enabled_in_order(self) -> tuple[str, ...]:
        """Enabled providers in trial order; API keys alone when none is enabled."""
        enabled = [n for n in PROVIDER_NAMES if getattr(self, n).enabled]
        if not enabled:
            return ("api_key",)
        ordered = [n for n in self.order if n in enabled]
        return tuple(ordered + [n for n in enabled if n not in ordered])


@dataclass(frozen=True)
class RoleConfig:
    permissions: tuple[str, ...] = ()
    inherits: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class RBACConfig:
    enabled: bool = True
    default_role: str | None = "user"
    cache_ttl: float = 60.0
    # Custom roles (merged over the seed's DEFAULT_ROLES).
    roles: Mapping[str, RoleConfig] = field(default_factory=dict)
    # Extra "METHOD /template" -> permission rules for routes of the wrapped app.
    routes: Mapping[str, str] = field(default_factory=dict)

    _shorthand = staticmethod(_enabled_shorthand)


@dataclass(frozen=True)
class SecurityConfig:
    enabled: bool = True
    require_auth: bool = True
    public_paths: tuple[str, ...] = ("/healthz", "/readyz")
    auth_providers: AuthProvidersConfig = field(default_factory=AuthProvidersConfig)
    rbac: RBACConfig = field(default_factory=RBACConfig)
    rate_limiting: RateLimitConfig = field(default_factory=RateLimitConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    # CIDRs whose X-Forwarded-For is believed; everything else uses the socket peer.
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: int = 10 * 1024 * 1024

    _aliases: ClassVar[dict[str, str]] = {"rate_limit": "rate_limiting", "audit_level": "audit"}

    @staticmethod
    def _shorthand(value: Any, path: str) -> Mapping[str, Any]:
        if isinstance(value, bool):
            return {"enabled": value}
        raise ConfigError(path, f"expected a mapping or true/false, got {value!r}")

    def _check(self, path: str) -> None:
        import ipaddress

        for i, cidr in enumerate(self.trusted_proxies):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(f"{path}.trusted_proxies[{i}]", f"not an IP network: {cidr!r}") from None
        for i, public in enumerate(self.public_paths):
            if not public.startswith("/"):
                raise ConfigError(f"{path}.public_paths[{i}]", f"must start with '/', got {public!r}")
        if self.max_body_bytes < 1:
            raise ConfigError(f"{path}.max_body_bytes", "must be at least 1")
