"""HTTP Basic with argon2id-hashed passwords (RFC 7617, UTF-8).

A verified credential is cached for a short time under a per-process peppered digest, so a
client sending Basic on every request pays argon2 once per TTL, not once per request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import TYPE_CHECKING

from tframex_asgi.auth.base import CredentialError, Credentials, PermissionResolver
from tframex_asgi.auth.principal import Principal
from tframex_asgi.auth.store import IdentityStore

if TYPE_CHECKING:
    from tframex_asgi.types import Scope

__all__ = ["BasicAuthProvider", "parse_basic"]

_MAX_CREDENTIAL_CHARS = 1024  # base64 of user:password; longer is an attack on argon2 or on us


def parse_basic(credential: str) -> tuple[str, str]:
    """``(username, password)`` from the base64 part of a Basic header, else CredentialError."""
    if len(credential) > _MAX_CREDENTIAL_CHARS:
        raise CredentialError("invalid_credentials")
    try:
        decoded = base64.b64decode(credential.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise CredentialError("invalid_credentials") from None
    username, sep, password = decoded.partition(":")
    if not sep or not username or not password:
        raise CredentialError("invalid_credentials")
    return username, password


class BasicAuthProvider:
    name = "basic"

    def __init__(self, store: IdentityStore, resolver: PermissionResolver, realm: str) -> None:
        self.store = store
        self.resolver = resolver
        self._challenge = f'Basic realm="{realm}", charset="UTF-8"'.encode()

    def challenge(self) -> bytes:
        return self._challenge

    def offered(self, creds: Credentials) -> str | None:
        auth = creds.authorization
        if auth is not None and auth[:6].lower() == "basic ":
            return auth[6:]
        return None

    def _digest(self, credential: str) -> bytes:
        return hmac.new(self.store.login_pepper, credential.strip().encode(), hashlib.sha256).digest()

    def cached(self, credential: str) -> Principal | None:
        """The principal of a credential verified earlier (no argon2, no I/O), else None. Only
        well-formed credentials that passed argon2 are ever cached."""
        if len(credential) > _MAX_CREDENTIAL_CHARS:
            return None
        return self.store.login_cache.get(self._digest(credential))

    async def authenticate(self, credential: str, scope: Scope) -> Principal:
        username, password = parse_basic(credential)
        digest = self._digest(credential)
        cached = self.store.login_cache.get(digest)
        if cached is not None:
            return cached
        user = await self.store.check_password(username, password)
        roles, permissions = await self.resolver.for_user(user["id"])
        principal = Principal(
            id=str(user["id"]),
            username=str(user["username"]),
            roles=roles,
            permissions=permissions,
            auth_method="basic",
        )
        self.store.login_cache.put(digest, principal)
        return principal
