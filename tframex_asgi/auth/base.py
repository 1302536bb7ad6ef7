"""What every auth provider shares: the provider protocol, credential errors, and where roles and
permissions come from (the RBAC engine)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from tframex_asgi.catalog.permissions import PERMISSIONS
from tframex_asgi.errors import AuthenticationError, ServiceUnavailableError

if TYPE_CHECKING:
    from tframex_asgi.auth.principal import Principal
    from tframex_asgi.config.security import RBACConfig
    from tframex_asgi.types import Scope

__all__ = [
    "API_KEY_PREFIX",
    "SEED_PERMISSIONS",
    "AuthProvider",
    "CredentialError",
    "Credentials",
    "IdPUnavailableError",
    "PermissionResolver",
    "bearer_api_key",
    "bearer_token",
]

logger = logging.getLogger("tframex_asgi.auth")

# The seed's PERMISSIONS names: a token scope naming one of these narrows what the token grants.
SEED_PERMISSIONS = frozenset(PERMISSIONS)


class CredentialError(AuthenticationError):
    """Credentials were offered and refused. ``reason`` is an audit reason (contracts.md); the
    client only ever sees a generic message."""

    def __init__(self, reason: str = "invalid_credentials") -> None:
        super().__init__("invalid credentials")
        self.reason = reason


class IdPUnavailableError(ServiceUnavailableError):
    """The identity provider (discovery, JWKS, introspection) could not be reached: 503, never allow."""

    code = "idp_unavailable"


class Credentials(NamedTuple):
    """The credential headers of one request, read once. ``ambiguous`` names a header that came
    more than once (refused: which one would win differs between proxies). Immutable; a tuple
    because one is built per request."""

    authorization: str | None = None
    api_key: str | None = None
    ambiguous: str | None = None


# Our API keys start with this (``tfx_<12 hex>_<secret>``): no JWT (``eyJ...``) and no opaque IdP
# token we know of does, so a Bearer value with it is an API key and never reaches JWT/OIDC.
API_KEY_PREFIX = "tfx_"


def bearer_token(creds: Credentials) -> str | None:
    auth = creds.authorization
    if auth is not None and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


def bearer_api_key(creds: Credentials) -> str | None:
    """``Authorization: Bearer tfx_...``: how OpenAI clients send our API keys."""
    token = bearer_token(creds)
    return token if token is not None and token.startswith(API_KEY_PREFIX) else None


class AuthProvider(Protocol):
    name: str  # "api_key" | "basic" | "jwt" | "oauth2"

    def challenge(self) -> bytes:
        """The WWW-Authenticate value for a 401."""
        ...

    def offered(self, creds: Credentials) -> str | None:
        """The credential this provider handles, or None when the request carries none for it."""
        ...

    async def authenticate(self, credential: str, scope: Scope) -> Principal:
        """The principal, or CredentialError / IdPUnavailableError."""
        ...

    # Optional, found with getattr when the layer is built:
    #   def cached(self, credential: str) -> Principal | None
    # the principal of a credential this provider already verified and still holds in its cache
    # (no I/O, no password or signature check), else None. The layer serves such a request
    # without the brute-force lookup unless the guard calls the address suspect.


class PermissionResolver:
    """Roles and permissions from the RBAC engine: ``rbac`` is anything with the engine's
    ``roles_for_user`` / ``permissions_for_roles`` (the stack's ``services.rbac``)."""

    def __init__(self, rbac: Any, rbac_config: RBACConfig) -> None:
        self.rbac = rbac
        custom = {p for role in rbac_config.roles.values() for p in role.permissions}
        self._declared = SEED_PERMISSIONS | custom | rbac_config.resources.permissions

    @property
    def known(self) -> frozenset[str]:
        """Every permission name: a token scope naming one of these narrows the grant."""
        return self._declared | frozenset(getattr(self.rbac, "all_permissions", ()))

    async def for_user(self, user_id: str, scopes: Iterable[str] = ()) -> tuple[frozenset[str], frozenset[str]]:
        """A stored user's roles and permissions; ``scopes`` (an API key's) can only narrow them."""
        roles = frozenset(await self.rbac.roles_for_user(user_id))
        permissions = frozenset(self.rbac.permissions_for_roles(roles))
        wanted = frozenset(scopes)
        return roles, (permissions & wanted if wanted else permissions)

    def for_token(self, roles: Iterable[str], token_scopes: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
        """An external identity: permissions of the token's roles, narrowed by the token's scope
        values that name a permission. Scopes never widen; scopes such as ``openid`` are ignored."""
        role_set = frozenset(r for r in roles if isinstance(r, str))
        permissions = frozenset(self.rbac.permissions_for_roles(role_set))
        known = self.known
        named = {s for s in token_scopes if s in known or s in permissions}
        return role_set, (permissions & named if named else permissions)
