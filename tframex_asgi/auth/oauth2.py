"""OAuth 2.0 / OpenID Connect bearer tokens from one issuer.

Discovery (``{issuer}/.well-known/openid-configuration``) must name exactly the configured
issuer. JWT access tokens are verified locally with the discovered JWKS; opaque tokens go to
RFC 7662 introspection (client credentials in HTTP Basic), answers cached by token digest for
at most ``cache_ttl`` and never past the token's ``exp``. When the IdP cannot be reached the
answer is 503: never 500 and never "allow".
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tframex_asgi.auth.base import (
    API_KEY_PREFIX,
    CredentialError,
    Credentials,
    IdPUnavailableError,
    PermissionResolver,
    bearer_token,
)
from tframex_asgi.auth.cache import TTLCache
from tframex_asgi.auth.idp import HttpClient, KeySource
from tframex_asgi.auth.jwt import JWTVerifier, claim_strings, external_principal
from tframex_asgi.auth.principal import Principal

if TYPE_CHECKING:
    from tframex_asgi.clock import Clock
    from tframex_asgi.config.security import OAuth2Config
    from tframex_asgi.types import Scope

__all__ = ["OAuth2Provider"]

logger = logging.getLogger("tframex_asgi.auth")
_DISCOVERY_RETRY = 5.0  # seconds between discovery attempts while the IdP is down
_MAX_OPAQUE_CHARS = 4096


@dataclass(frozen=True, slots=True)
class _Discovered:
    verifier: JWTVerifier
    introspection_endpoint: str | None


class OAuth2Provider:
    name = "oauth2"

    def __init__(self, cfg: OAuth2Config, http: HttpClient, resolver: PermissionResolver, clock: Clock) -> None:
        assert cfg.issuer is not None
        self.cfg = cfg
        self.issuer = cfg.issuer
        self.http = http
        self.resolver = resolver
        self.clock = clock
        self.audience = cfg.audience or cfg.client_id
        self.cache: TTLCache[Principal] = TTLCache(cfg.cache_ttl, clock.monotonic)
        # Inactive tokens never become active again: remembering them spares the IdP.
        self.rejected: TTLCache[bool] = TTLCache(cfg.cache_ttl, clock.monotonic)
        self._discovered: _Discovered | None = None
        self._failed_at: float | None = None
        self._lock = asyncio.Lock()
        self._challenge = b'Bearer realm="tframex"'

    def challenge(self) -> bytes:
        return self._challenge

    def offered(self, creds: Credentials) -> str | None:
        token = bearer_token(creds)
        # Our own API keys (``tfx_``) are never sent to the IdP for introspection.
        return None if token is None or token.startswith(API_KEY_PREFIX) else token

    async def warm(self) -> None:
        """Discover at startup so the first request does not wait; an IdP that is down does
        not stop startup (requests answer 503 until it is back)."""
        try:
            await self.discover()
        except IdPUnavailableError as exc:
            logger.warning("OIDC discovery for %s failed at startup: %s", self.issuer, exc.message)

    async def discover(self) -> _Discovered:
        if self._discovered is not None:
            return self._discovered
        async with self._lock:
            if self._discovered is not None:
                return self._discovered
            if self._failed_at is not None and self.clock.monotonic() - self._failed_at < _DISCOVERY_RETRY:
                raise IdPUnavailableError("OIDC discovery failed recently")
            try:
                self._discovered = await self._discover()
            except IdPUnavailableError:
                self._failed_at = self.clock.monotonic()
                raise
            return self._discovered

    async def _discover(self) -> _Discovered:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = await self.http.get_json(url)
        # Exact match (OIDC Discovery 4.3): a look-alike issuer is a different IdP.
        if doc.get("issuer") != self.issuer:
            raise IdPUnavailableError(f"discovery at {url} names another issuer")
        jwks_uri, introspection = doc.get("jwks_uri"), doc.get("introspection_endpoint")
        for name, value in (("jwks_uri", jwks_uri), ("introspection_endpoint", introspection)):
            if value is not None and not (isinstance(value, str) and value.startswith(("https://", "http://"))):
                raise IdPUnavailableError(f"discovery at {url}: bad {name}")
        keys = KeySource(self.clock, jwks_url=jwks_uri, http=self.http, min_refresh=self.cfg.jwks_min_refresh_interval)
        verifier = JWTVerifier(
            keys,
            self.clock,
            algorithms=self.cfg.algorithms,
            issuer=self.issuer,
            audience=self.audience,
            leeway=self.cfg.leeway,
            max_token_bytes=self.cfg.max_token_bytes,
        )
        can_introspect = self.cfg.introspection and self.cfg.client_id and self.cfg.client_secret
        if self.cfg.introspection and not can_introspect:
            logger.warning("oauth2: no client_id/client_secret, so opaque tokens cannot be introspected")
        return _Discovered(verifier, introspection if can_introspect else None)

    def cached(self, credential: str) -> Principal | None:
        """A token introspected or verified earlier, cached no longer than its ``exp`` (no I/O)."""
        if not credential or len(credential) > self.cfg.max_token_bytes or not credential.isascii():
            return None
        return self.cache.get(hashlib.sha256(credential.encode()).digest())

    async def authenticate(self, credential: str, scope: Scope) -> Principal:
        if not credential or len(credential) > self.cfg.max_token_bytes or not credential.isascii():
            raise CredentialError("invalid_token")
        digest = hashlib.sha256(credential.encode()).digest()
        cached = self.cache.get(digest)
        if cached is not None:
            return cached
        if self.rejected.get(digest):
            raise CredentialError("invalid_token")
        found = await self.discover()
        if credential.count(".") == 2:
            if found.verifier.keys.jwks_url is None:
                raise CredentialError("invalid_token")
            claims = await found.verifier.verify(credential)
        else:
            claims = await self._introspect(found, credential, digest)
        principal = self._principal(claims)
        exp = claims.get("exp")
        ttl = float(exp) - self.clock.time() if isinstance(exp, int | float) else self.cfg.cache_ttl
        self.cache.put(digest, principal, ttl=ttl)
        return principal

    async def _introspect(self, found: _Discovered, token: str, digest: bytes) -> dict[str, Any]:
        if found.introspection_endpoint is None or len(token) > _MAX_OPAQUE_CHARS:
            raise CredentialError("invalid_token")
        assert self.cfg.client_id is not None and self.cfg.client_secret is not None
        answer = await self.http.post_json(
            found.introspection_endpoint,
            {"token": token, "token_type_hint": "access_token"},
            (self.cfg.client_id, self.cfg.client_secret),
        )
        if answer.get("active") is not True:
            self.rejected.put(digest, True)
            raise CredentialError("invalid_token")
        now = self.clock.time()
        exp = answer.get("exp")
        if exp is not None and (not isinstance(exp, int | float) or exp <= now - self.cfg.leeway):
            raise CredentialError("expired_token")
        nbf = answer.get("nbf")
        if nbf is not None and (not isinstance(nbf, int | float) or nbf > now + self.cfg.leeway):
            raise CredentialError("invalid_token")
        if "refresh" in str(answer.get("token_type", "")).lower():
            raise CredentialError("invalid_token")  # a refresh token is not an access token
        if "iss" in answer and answer["iss"] != self.issuer:
            raise CredentialError("invalid_token")
        # Whenever the answer names an audience it must include ours, also at the default
        # audience (the client id): a token minted for another API is not a token for us.
        if "aud" in answer and (self.audience is None or self.audience not in claim_strings(answer["aud"])):
            raise CredentialError("invalid_token")
        return _with_subject(answer)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        return external_principal(
            claims,
            self.resolver,
            roles_claim=self.cfg.roles_claim,
            scopes_claim=self.cfg.scopes_claim,
            username_claim=self.cfg.username_claim,
            method="oauth2",
        )


def _with_subject(answer: dict[str, Any]) -> dict[str, Any]:
    """RFC 7662 makes ``sub`` optional and IdPs omit it for client-credentials tokens: the
    client is then the subject, namespaced (``client:<client_id>``) so that a client id can
    never pass for a user's ``sub``."""
    subject = answer.get("sub")
    if isinstance(subject, str) and subject:
        return answer
    if "sub" in answer:
        raise CredentialError("invalid_token")  # present but not a usable string: malformed
    client = answer.get("client_id")
    if not isinstance(client, str) or not client:
        raise CredentialError("invalid_token")
    username = answer.get("username")
    return {
        **answer,
        "sub": f"client:{client}",
        "username": username if isinstance(username, str) and username else client,
    }
