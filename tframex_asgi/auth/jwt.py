"""JWT bearer tokens (joserfc): explicit algorithm allow-list, keys chosen by ``kid`` from
configuration or a JWKS, ``exp`` required and ``nbf``/``iat``/``iss``/``aud`` checked with leeway.

The header is read and checked by us before joserfc sees the token: size limit, exactly three
base64url parts, ``alg`` in the allow-list (exact, case-sensitive, so every spelling of
``none`` fails), no ``crit`` or ``b64`` extensions. Verified tokens are cached by digest until
they expire (at most ``cache_ttl``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError

from tframex_asgi.auth.base import CredentialError, Credentials, PermissionResolver, bearer_token
from tframex_asgi.auth.cache import TTLCache
from tframex_asgi.auth.idp import HttpClient, KeySource, load_static_key
from tframex_asgi.auth.principal import Principal

if TYPE_CHECKING:
    from tframex_asgi.clock import Clock
    from tframex_asgi.config.security import JWTConfig
    from tframex_asgi.types import Scope

__all__ = ["JWTProvider", "JWTVerifier", "bearer_token", "claim_path", "claim_strings", "external_principal"]

_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_MAX_HEADER_CHARS = 2048
_REFUSED_HEADERS = ("crit", "b64")


def claim_path(claims: dict[str, Any], path: str) -> Any:
    """A claim by dotted path (``realm_access.roles``), a literal key with dots winning."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def claim_strings(value: Any) -> list[str]:
    """A list of strings from a list claim or a space-separated string (OAuth ``scope``)."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _b64json(part: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError, RecursionError):  # "[[[[..." fits in the size limit
        return None


class JWTVerifier:
    """Signature and claims of one token; raises CredentialError (``invalid_token`` or
    ``expired_token``) or IdPUnavailableError when the JWKS cannot be fetched."""

    def __init__(
        self,
        keys: KeySource,
        clock: Clock,
        *,
        algorithms: Iterable[str],
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = 30.0,
        max_token_bytes: int = 8192,
    ) -> None:
        self.keys = keys
        self.clock = clock
        self.algorithms = frozenset(algorithms)
        if not self.algorithms or any(a.strip().lower() == "none" for a in self.algorithms):
            raise ValueError("an explicit algorithm allow-list without 'none' is required")
        self.max_token_bytes = max_token_bytes
        options: dict[str, Any] = {"exp": {"essential": True}, "sub": {"essential": True}}
        if issuer:
            options["iss"] = {"essential": True, "value": issuer}
        if audience:
            options["aud"] = {"essential": True, "value": audience}
        self.registry = jwt.JWTClaimsRegistry(now=self._now, leeway=int(leeway), **options)

    def _now(self) -> int:
        return int(self.clock.time())

    async def verify(self, token: str) -> dict[str, Any]:
        if len(token) > self.max_token_bytes or not _JWS.match(token):
            raise CredentialError("invalid_token")
        header_part = token.split(".", 1)[0]
        header = _b64json(header_part) if len(header_part) <= _MAX_HEADER_CHARS else None
        if not isinstance(header, dict):
            raise CredentialError("invalid_token")
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise CredentialError("invalid_token")
        if any(h in header for h in _REFUSED_HEADERS) or not isinstance(kid, str | None):
            raise CredentialError("invalid_token")
        key = await self.keys.key_for(kid, alg)
        try:
            claims: dict[str, Any] = jwt.decode(token, key, algorithms=[alg]).claims
            self.registry.validate(claims)
        except ExpiredTokenError:
            raise CredentialError("expired_token") from None
        except (JoseError, ValueError, TypeError, KeyError):
            raise CredentialError("invalid_token") from None
        return claims


class JWTProvider:
    """``Authorization: Bearer <JWT>`` for tokens we verify with configured keys or a JWKS.

    External identity: ``id`` = ``sub``; roles from ``roles_claim``; permissions are those of
    the roles, narrowed (never widened) by the ``scopes_claim`` values that name permissions.
    """

    name = "jwt"

    def __init__(
        self,
        verifier: JWTVerifier,
        resolver: PermissionResolver,
        clock: Clock,
        *,
        roles_claim: str = "roles",
        scopes_claim: str = "scope",
        username_claim: str = "preferred_username",
        cache_ttl: float = 60.0,
        realm: str = "tframex",
    ) -> None:
        self.verifier = verifier
        self.resolver = resolver
        self.clock = clock
        self.roles_claim = roles_claim
        self.scopes_claim = scopes_claim
        self.username_claim = username_claim
        self.cache: TTLCache[Principal] = TTLCache(cache_ttl, clock.monotonic)
        self._challenge = f'Bearer realm="{realm}"'.encode()

    @classmethod
    def from_config(
        cls, cfg: JWTConfig, resolver: PermissionResolver, clock: Clock, http: HttpClient | None = None
    ) -> JWTProvider:
        """``http``: the client for ``cfg.jwks_url`` (None when no JWKS URL is configured)."""
        static = []
        if cfg.secret and any(a.startswith("HS") for a in cfg.algorithms):
            static.append(load_static_key(cfg.secret, "oct"))
        if cfg.public_key:
            static.append(load_static_key(cfg.public_key))
        keys = KeySource(
            clock,
            static=static,
            jwks_url=cfg.jwks_url,
            http=http,
            cache_ttl=cfg.jwks_cache_ttl,
            min_refresh=cfg.jwks_min_refresh_interval,
        )
        verifier = JWTVerifier(
            keys,
            clock,
            algorithms=cfg.algorithms,
            issuer=cfg.issuer,
            audience=cfg.audience,
            leeway=cfg.leeway,
            max_token_bytes=cfg.max_token_bytes,
        )
        return cls(
            verifier,
            resolver,
            clock,
            roles_claim=cfg.roles_claim,
            scopes_claim=cfg.scopes_claim,
            username_claim=cfg.username_claim,
        )

    def challenge(self) -> bytes:
        return self._challenge

    def offered(self, creds: Credentials) -> str | None:
        token = bearer_token(creds)
        # Opaque tokens (no two dots) are left to OAuth2 introspection.
        return token if token is not None and token.count(".") == 2 else None

    def cached(self, credential: str) -> Principal | None:
        """A token verified earlier, cached no longer than its ``exp`` (no I/O), else None."""
        return self.cache.get(hashlib.sha256(credential.encode()).digest())

    async def authenticate(self, credential: str, scope: Scope) -> Principal:
        digest = hashlib.sha256(credential.encode()).digest()
        cached = self.cache.get(digest)
        if cached is not None:
            return cached
        claims = await self.verifier.verify(credential)
        principal = self.principal(claims)
        self.cache.put(digest, principal, ttl=float(claims["exp"]) - self.clock.time())
        return principal

    def principal(self, claims: dict[str, Any]) -> Principal:
        return external_principal(
            claims,
            self.resolver,
            roles_claim=self.roles_claim,
            scopes_claim=self.scopes_claim,
            username_claim=self.username_claim,
            method="jwt",
        )


def external_principal(
    claims: dict[str, Any],
    resolver: PermissionResolver,
    *,
    roles_claim: str,
    scopes_claim: str,
    username_claim: str,
    method: str,
) -> Principal:
    """The Principal of a verified token (or introspection answer): no users row behind it."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise CredentialError("invalid_token")
    username = claims.get(username_claim) or claims.get("username")
    roles, permissions = resolver.for_token(
        claim_strings(claim_path(claims, roles_claim)),
        claim_strings(claims.get(scopes_claim)) + claim_strings(claims.get("scp")),
    )
    return Principal(
        id=subject,
        username=username if isinstance(username, str) and username else subject,
        roles=roles,
        permissions=permissions,
        auth_method=method,
        external=True,
    )
