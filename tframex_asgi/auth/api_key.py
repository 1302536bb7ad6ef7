"""API keys in a header: ``X-API-Key`` (configurable) or ``Authorization: Bearer tfx_...`` (what
OpenAI clients send); never the query string.

A warm request costs one sha256 and one dict lookup: the verified principal is cached under the
key's digest for ``cache_ttl`` seconds, and the key's own expiry is still checked on every hit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tframex_asgi.auth.base import CredentialError, Credentials, PermissionResolver, bearer_api_key
from tframex_asgi.auth.principal import Principal
from tframex_asgi.auth.store import KEY_PATTERN, IdentityStore, key_digest, to_epoch

if TYPE_CHECKING:
    from tframex_asgi.clock import Clock
    from tframex_asgi.types import Scope

__all__ = ["APIKeyProvider"]

_MAX_KEY_CHARS = 128


class APIKeyProvider:
    name = "api_key"

    def __init__(self, store: IdentityStore, resolver: PermissionResolver, clock: Clock, header_name: str) -> None:
        self.store = store
        self.resolver = resolver
        self.clock = clock
        self.header_name = header_name
        self._challenge = f'ApiKey header="{header_name}"'.encode("latin-1")

    def challenge(self) -> bytes:
        return self._challenge

    def offered(self, creds: Credentials) -> str | None:
        # The layer refuses a request with both headers, so at most one of these is set.
        return creds.api_key if creds.api_key is not None else bearer_api_key(creds)

    def cached(self, credential: str) -> Principal | None:
        """The principal of a key verified earlier and not yet expired, else None (no I/O; the
        full path then decides, with the reason)."""
        if len(credential) > _MAX_KEY_CHARS:
            return None
        cached = self.store.key_cache.get(key_digest(credential))
        if cached is None:
            return None
        principal, expires = cached
        if expires is None or expires > self.clock.time():
            return principal
        return None

    async def authenticate(self, credential: str, scope: Scope) -> Principal:
        if len(credential) > _MAX_KEY_CHARS:
            raise CredentialError("invalid_credentials")
        digest = key_digest(credential)
        cached = self.store.key_cache.get(digest)
        if cached is not None:  # only a well-formed, verified key is ever cached
            principal, expires = cached
            if expires is None or expires > self.clock.time():
                return principal
            self.store.key_cache.pop(digest)
            raise CredentialError("expired_key")
        if KEY_PATTERN.match(credential) is None:
            raise CredentialError("invalid_credentials")
        key_row, user = await self.store.check_api_key(credential)
        roles, permissions = await self.resolver.for_user(user["id"], key_row.get("scopes") or ())
        principal = Principal(
            id=str(user["id"]),
            username=str(user["username"]),
            roles=roles,
            permissions=permissions,
            auth_method="api_key",
            api_key_id=str(key_row["id"]),
        )
        expires = to_epoch(key_row.get("expires_at"))
        self.store.key_cache.put(digest, (principal, expires))
        return principal
