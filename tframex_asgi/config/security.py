"""``enterprise.security``: authentication providers, RBAC, and the security layer switches."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tframex_asgi.catalog.routes import DEFAULT_PUBLIC_PATHS
from tframex_asgi.config._parse import Section, enabled_shorthand
from tframex_asgi.config.audit import AuditConfig
from tframex_asgi.config.keys import load_static_key
from tframex_asgi.config.ratelimit import RateLimitConfig
from tframex_asgi.config.rbac import RBACConfig, ResourcesConfig, RoleConfig
from tframex_asgi.errors import ConfigError

__all__ = [
    "APIKeyConfig",
    "AuthProvidersConfig",
    "BasicAuthConfig",
    "JWTConfig",
    "OAuth2Config",
    "RBACConfig",
    "ResourcesConfig",
    "RoleConfig",
    "SecurityConfig",
]

PROVIDER_NAMES = ("api_key", "basic", "jwt", "oauth2")
_PROVIDER_ALIASES = {"apikey": "api_key", "api-key": "api_key", "oidc": "oauth2"}


_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_RESERVED_HEADERS = {"authorization", "cookie", "host", "content-type", "content-length"}
# JWS algorithms an allow-list may name (RFC 7518 + EdDSA); anything else is a typo or an attack.
JWS_ALGORITHMS = frozenset({
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "ES256K", "EdDSA", "Ed25519",
})  # fmt: skip


def _check_algorithms(algorithms: tuple[str, ...], path: str) -> None:
    if not algorithms:
        raise ConfigError(path, "needs at least one algorithm")
    for i, alg in enumerate(algorithms):
        if not isinstance(alg, str) or alg.strip().lower() == "none":
            raise ConfigError(f"{path}[{i}]", "'none' is never allowed")
        if alg not in JWS_ALGORITHMS:
            raise ConfigError(f"{path}[{i}]", f"unknown algorithm {alg!r} ({', '.join(sorted(JWS_ALGORITHMS))})")


@dataclass(frozen=True)
class APIKeyConfig(Section):
    _path: ClassVar[str] = "enterprise.security.auth_providers.api_key"

    # Accept API keys (tfx_..., made with `tframex-asgi keys` or the admin API). When no provider
    # at all is enabled, API keys are accepted anyway.
    enabled: bool = False
    # Header an API key is read from (never the query string); `Authorization: Bearer tfx_...` is
    # accepted too. Not Authorization, Cookie, Host, Content-Type or Content-Length.
    header_name: str = "X-API-Key"
    # Seconds a verified key is trusted without a database read; revocation through the admin
    # API or CLI reaches every process on the same database within 1 s anyway.
    cache_ttl: float = 30.0

    _shorthand = staticmethod(enabled_shorthand)

    def _check(self, path: str) -> None:
        if not _HEADER_NAME.match(self.header_name) or self.header_name.lower() in _RESERVED_HEADERS:
            raise ConfigError(f"{path}.header_name", f"not a usable header name: {self.header_name!r}")
        if self.cache_ttl < 0:
            raise ConfigError(f"{path}.cache_ttl", "must be 0 or more")


@dataclass(frozen=True)
class BasicAuthConfig(Section):
    _path: ClassVar[str] = "enterprise.security.auth_providers.basic"

    # Accept HTTP Basic credentials: the username and password of a stored user.
    enabled: bool = False
    # Realm named in the `WWW-Authenticate: Basic` challenge of a 401; printable, without quotes or
    # backslashes.
    realm: str = "tframex"
    # Seconds a verified username/password stays cached (keyed by a peppered digest, per process).
    cache_ttl: float = 30.0
    # argon2id passes (RFC 9106 low-memory profile: 3 passes, 64 MiB, 4 lanes). The argon2_*
    # parameters apply to passwords hashed from now on; a stored hash made with other parameters
    # is rehashed at its user's next successful login.
    argon2_time_cost: int = 3
    # argon2id memory per hash, in KiB (at least 8 x argon2_parallelism); at most 4 hashes run at
    # once.
    argon2_memory_kib: int = 65536
    # argon2id lanes (threads) per hash, at least 1.
    argon2_parallelism: int = 4

    _shorthand = staticmethod(enabled_shorthand)

    def _check(self, path: str) -> None:
        if '"' in self.realm or "\\" in self.realm or not self.realm.isprintable():
            raise ConfigError(f"{path}.realm", "must be printable, without quotes or backslashes")
        if self.cache_ttl < 0:
            raise ConfigError(f"{path}.cache_ttl", "must be 0 or more")
        if self.argon2_time_cost < 1 or self.argon2_parallelism < 1:
            raise ConfigError(f"{path}.argon2_time_cost", "argon2 time cost and parallelism must be at least 1")
        if self.argon2_memory_kib < 8 * self.argon2_parallelism:
            raise ConfigError(f"{path}.argon2_memory_kib", "must be at least 8 x argon2_parallelism")


@dataclass(frozen=True)
class JWTConfig(Section):
    _path: ClassVar[str] = "enterprise.security.auth_providers.jwt"

    # Accept `Authorization: Bearer <JWT>` tokens verified with secret, public_key or jwks_url (one
    # of them is required); `exp` and `sub` are required claims.
    enabled: bool = False
    algorithms: tuple[str, ...] = ("RS256",)
    secret: str | None = None
    public_key: str | None = None
    jwks_url: str | None = None
    # When set, a token's `iss` must be exactly this; None: `iss` is not checked.
    issuer: str | None = None
    # When set, a token's `aud` must contain this; None: `aud` is not checked.
    audience: str | None = None
    leeway: float = 30.0
    # Longer tokens are refused before they are parsed (at least 256).
    max_token_bytes: int = 8192
    # Claim holding the caller's roles, a list or a space-separated string (a dotted path such as
    # realm_access.roles reads a nested claim); the caller has those roles' permissions, narrowed
    # by scopes_claim.
    roles_claim: str = "roles"
    # Top-level claim of the token's scopes (a list or a space-separated string; `scp` is read
    # too): values naming a permission narrow the roles' permissions, never widen them; others
    # (openid) are ignored.
    scopes_claim: str = "scope"
    # Claim shown as the caller's username (else `username`, else `sub`); the caller's id is `sub`.
    username_claim: str = "preferred_username"
    # Seconds a JWKS fetch may take.
    timeout: float = 5.0
    # Seconds a fetched JWKS is kept.
    jwks_cache_ttl: float = 3600.0
    # Least seconds between two JWKS refreshes forced by unknown kids (so random kids cannot make
    # us hammer the IdP).
    jwks_min_refresh_interval: float = 30.0

    _shorthand = staticmethod(enabled_shorthand)

    def _check(self, path: str) -> None:
        _check_algorithms(self.algorithms, f"{path}.algorithms")
        if not self.enabled:
            return
        if not (self.secret or self.public_key or self.jwks_url):
            raise ConfigError(path, "needs one of secret, public_key or jwks_url")
        hmac_algs = [a for a in self.algorithms if a.startswith("HS")]
        if hmac_algs and not self.secret:
            raise ConfigError(f"{path}.secret", f"is required for {', '.join(hmac_algs)}")
        if self.secret and "-----BEGIN" in self.secret:
            raise ConfigError(f"{path}.secret", "looks like a PEM key: put public keys in public_key")
        if self.secret and len(self.secret.encode()) < 32:
            raise ConfigError(f"{path}.secret", "must be at least 32 bytes")
        if len(hmac_algs) < len(self.algorithms) and not (self.public_key or self.jwks_url):
            raise ConfigError(f"{path}.public_key", "or jwks_url is required for asymmetric algorithms")
        if self.jwks_url and not self.jwks_url.startswith(("https://", "http://")):
            raise ConfigError(f"{path}.jwks_url", "must be an http(s) URL")
        if self.max_token_bytes < 256:
            raise ConfigError(f"{path}.max_token_bytes", "must be at least 256")
        if self.public_key:
            try:
                load_static_key(self.public_key)
            except Exception:  # joserfc raises several types; the key itself is never echoed
                raise ConfigError(f"{path}.public_key", "is neither a JWK nor a PEM public key") from None


@dataclass(frozen=True)
class OAuth2Config(Section):
    _path: ClassVar[str] = "enterprise.security.auth_providers.oauth2"

    # Accept bearer tokens of one OpenID Connect issuer (`issuer` is required): JWT access tokens
    # verified with the discovered JWKS, opaque ones by introspection. Bearer values starting with
    # tfx_ (API keys) are never sent to the IdP.
    enabled: bool = False
    issuer: str | None = None
    # This API's client at the IdP: with client_secret, it authenticates introspection calls (HTTP
    # Basic). Also the expected audience when `audience` is None.
    client_id: str | None = None
    # The secret of client_id, for introspection.
    client_secret: str | None = None
    # The `aud` a token must contain: a JWT access token must name it, an introspection answer is
    # checked when it names an audience. None: client_id. Both None: a JWT's `aud` is not checked,
    # and an introspection answer naming any audience is refused.
    audience: str | None = None
    # Allow-list for JWT access tokens: asymmetric algorithms only (HS* and `none` are refused).
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    # RFC 7662 for opaque tokens; needs client_id and client_secret (without them only JWT
    # access tokens, verified with the discovered JWKS, are accepted).
    introspection: bool = True
    # Seconds a verified token or introspection answer stays cached (never past the token's
    # `exp`); an inactive token is remembered as refused for as long.
    cache_ttl: float = 60.0
    # Seconds an HTTP call to the IdP (discovery, JWKS, introspection) may take; an IdP that cannot
    # be reached makes the request answer 503.
    timeout: float = 5.0
    # As jwt.roles_claim: the claim (or dotted path) holding the caller's roles.
    roles_claim: str = "roles"
    # As jwt.scopes_claim: scope values naming a permission narrow the roles' permissions.
    scopes_claim: str = "scope"
    # As jwt.username_claim: the claim shown as the caller's username (else `username`, else `sub`).
    username_claim: str = "preferred_username"
    # Seconds of clock skew accepted on `exp`/`nbf` (JWT access tokens and introspection answers).
    leeway: float = 30.0
    # Longer (or non-ASCII) bearer tokens are refused; opaque tokens over 4096 characters are never
    # introspected.
    max_token_bytes: int = 8192
    # Least seconds between two refreshes of the discovered JWKS forced by unknown kids.
    jwks_min_refresh_interval: float = 30.0

    _shorthand = staticmethod(enabled_shorthand)

    def _check(self, path: str) -> None:
        _check_algorithms(self.algorithms, f"{path}.algorithms")
        for i, alg in enumerate(self.algorithms):
            if alg.startswith("HS"):
                raise ConfigError(f"{path}.algorithms[{i}]", "symmetric algorithms cannot be verified with JWKS")
        if self.enabled and not self.issuer:
            raise ConfigError(f"{path}.issuer", "is required when oauth2 is enabled")
        if self.issuer and not self.issuer.startswith(("https://", "http://")):
            raise ConfigError(f"{path}.issuer", "must be an http(s) URL")


@dataclass(frozen=True)
class AuthProvidersConfig(Section):
    _path: ClassVar[str] = "enterprise.security.auth_providers"

    # API keys (X-API-Key, or Bearer tfx_...) of stored users.
    api_key: APIKeyConfig = field(default_factory=APIKeyConfig)
    # HTTP Basic with the username and password of a stored user.
    basic: BasicAuthConfig = field(default_factory=BasicAuthConfig)
    # JWT bearer tokens verified with configured keys or a JWKS.
    jwt: JWTConfig = field(default_factory=JWTConfig)
    # OAuth 2.0 / OpenID Connect bearer tokens of one issuer (discovery, JWKS, introspection).
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
class SecurityConfig(Section):
    _path: ClassVar[str] = "enterprise.security"

    enabled: bool = True
    require_auth: bool = True
    public_paths: tuple[str, ...] = DEFAULT_PUBLIC_PATHS
    # How callers authenticate: the enabled providers, tried in `order` (API keys alone when none
    # is enabled).
    auth_providers: AuthProvidersConfig = field(default_factory=AuthProvidersConfig)
    # Roles, permissions and route rules: the authorization layer.
    rbac: RBACConfig = field(default_factory=RBACConfig)
    # Limits per client, role tier, route and token budget, and the failed-authentication guard.
    rate_limiting: RateLimitConfig = field(default_factory=RateLimitConfig)
    # What is audited, redaction, the hash chain and durability of the audit rows.
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
