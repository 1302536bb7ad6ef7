"""Authentication: principals, the identity store (users, API keys) and the providers
(API key, Basic, JWT, OAuth2/OIDC) behind one pure-ASGI layer."""

from tframex_asgi.auth.base import AuthProvider, CredentialError, Credentials, IdPUnavailableError
from tframex_asgi.auth.layer import AuthenticationMiddleware
from tframex_asgi.auth.principal import Principal, set_anonymous, set_principal
from tframex_asgi.auth.store import IdentityStore, get_identity_store

__all__ = [
    "AuthProvider",
    "AuthenticationMiddleware",
    "CredentialError",
    "Credentials",
    "IdPUnavailableError",
    "IdentityStore",
    "Principal",
    "get_identity_store",
    "set_anonymous",
    "set_principal",
]
