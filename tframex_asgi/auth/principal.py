"""The authenticated identity: ``scope["user"]`` (Starlette ``BaseUser``-compatible) and its credentials.

``scope["auth"]`` is Starlette's ``AuthCredentials`` holding the granted permissions, so
``request.user``, ``request.auth`` and ``starlette.authentication.requires()`` work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.authentication import AuthCredentials, BaseUser, UnauthenticatedUser

from tframex_asgi.context import RequestState, get_state
from tframex_asgi.types import Scope
from tframex_asgi.util import memo_put

__all__ = ["AUTH_METHODS", "Principal", "set_anonymous", "set_principal", "stored_user_id", "subject_of"]

AUTH_METHODS = ("api_key", "basic", "jwt", "oauth2")


@dataclass(frozen=True, slots=True)
class Principal(BaseUser):
    """Who made the request, with roles and the permissions they grant (already narrowed by
    API-key or token scopes)."""

    id: str  # users.id (UUID) or the token subject for external identities
    username: str
    roles: frozenset[str]
    permissions: frozenset[str]
    auth_method: str  # one of AUTH_METHODS
    api_key_id: str | None = None
    external: bool = False  # identity from a token: there is no users row

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.username

    @property
    def identity(self) -> str:
        return self.id

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions

    def __repr__(self) -> str:  # never anything secret: ids and names only
        return f"Principal(id={self.id!r}, username={self.username!r}, auth_method={self.auth_method!r})"


def stored_user_id(user: object) -> str | None:
    """The ``users.id`` of an authenticated stored user; None for anonymous callers and for token
    identities (JWT/OAuth2), whose ``id`` is the IdP's ``sub``: a token whose ``sub`` happens to
    equal a stored user's UUID must never be taken for that user."""
    if not getattr(user, "is_authenticated", False) or getattr(user, "external", False):
        return None
    uid = getattr(user, "id", None)
    return str(uid) if uid is not None else None


def subject_of(user: object) -> str | None:
    """The owner subject access checks compare: ``users.id`` for stored users,
    ``<auth method>:<sub>`` for token identities (so ``jwt:<uuid>`` never matches ``<uuid>``)."""
    if not getattr(user, "is_authenticated", False):
        return None
    uid = getattr(user, "id", None)
    if uid is None:
        return None
    if getattr(user, "external", False):
        return f"{getattr(user, 'auth_method', 'external')}:{uid}"
    return str(uid)


# Sorted scopes per permission set: a handful of distinct sets (one per role mix and key scope),
# each sorted once instead of on every request. frozenset caches its own hash.
_SORTED: dict[frozenset[str], tuple[str, ...]] = {}
_SORTED_MAX = 4096


def _sorted_scopes(permissions: frozenset[str]) -> tuple[str, ...]:
    scopes = _SORTED.get(permissions)
    if scopes is None:
        scopes = memo_put(_SORTED, permissions, tuple(sorted(permissions)), _SORTED_MAX)
    return scopes


def set_principal(scope: Scope, principal: Principal, state: RequestState | None = None) -> None:
    """Put ``principal`` where Starlette and our own layers look for it (``state``: the request's
    ``scope["tframex"]`` when the caller has it already)."""
    scope["user"] = principal
    # A fresh AuthCredentials (its scopes list is mutable: never shared between requests).
    scope["auth"] = AuthCredentials(_sorted_scopes(principal.permissions))
    (get_state(scope) if state is None else state)["principal"] = principal


def set_anonymous(scope: Scope) -> None:
    """Public paths (and optional auth without credentials) pass as Starlette's anonymous user."""
    scope["user"] = UnauthenticatedUser()
    scope["auth"] = AuthCredentials([])
