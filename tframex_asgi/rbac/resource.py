"""The seed's Resource Guard: resource-level access control for one caller.

The same rules the HTTP routes apply (permissions from ``scope["auth"].scopes``, own rows only
unless ``system.admin``), usable where there is no request: an in-process run checks the
principal it was handed exactly as the authorization layer checks a request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.authentication import AuthCredentials, UnauthenticatedUser

from tframex_asgi.errors import AuthenticationError, AuthorizationError, NotFoundError
from tframex_asgi.rbac.guard import missing_permissions, owns
from tframex_asgi.types import Scope

__all__ = ["CallerGuard"]


class CallerGuard:
    """``CallerGuard(request.scope)`` or ``CallerGuard.for_principal(principal)``: checks in your
    own code (the per-resource rules of ``rbac.resources`` are ``ResourceGuard``, enforced by the
    engine)."""

    __slots__ = ("scope",)

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    @classmethod
    def for_principal(cls, principal: Any) -> CallerGuard:
        """A guard over a :class:`~tframex_asgi.auth.Principal` (None: an anonymous caller)."""
        if principal is None:
            return cls({"user": UnauthenticatedUser(), "auth": AuthCredentials([])})
        scopes = sorted(getattr(principal, "permissions", ()))
        return cls({"user": principal, "auth": AuthCredentials(scopes)})

    @property
    def authenticated(self) -> bool:
        return bool(getattr(self.scope.get("user"), "is_authenticated", False))

    def allowed(self, *permissions: str, any_of: bool = False) -> bool:
        return not missing_permissions(self.scope, permissions, any_of=any_of)

    def owns(self, owner_id: str | None) -> bool:
        return owns(self.scope, owner_id)

    def require(self, *permissions: str, any_of: bool = False, what: str | None = None) -> None:
        """Raise :class:`AuthenticationError` (no caller) or :class:`AuthorizationError` naming the
        missing permission(s)."""
        missing = missing_permissions(self.scope, permissions, any_of=any_of)
        if not missing:
            return
        if not self.authenticated:
            raise AuthenticationError("authentication required")
        target = f" to {what}" if what else ""
        raise AuthorizationError(f"missing permission {' or '.join(missing)}{target}")

    def require_owner(self, owner_id: str | None, what: str = "resource") -> None:
        """Someone else's row looks exactly like a missing one (no existence oracle)."""
        if not self.owns(owner_id):
            raise NotFoundError(f"no such {what}")

    def filter_owned(self, rows: Iterable[dict[str, Any]], owner_key: str = "user_id") -> list[dict[str, Any]]:
        return [r for r in rows if self.owns(r.get(owner_key))]
