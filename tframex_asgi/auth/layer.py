"""The authentication layer: providers tried in the configured order, identity put in the scope.

Every path needs credentials unless it is listed in ``security.public_paths`` (exact match:
``/healthz/../agents`` is not ``/healthz``). A 401 names every enabled scheme in
``WWW-Authenticate``; the body never says which part of a credential was wrong. A request with
more than one credential (``Authorization`` plus the API-key header) is refused before any check
(``multiple_credentials``), and each of them counts as a failed login.

Brute-force protection (``failures``, the rate-limit package's guard): ``blocked(ip)`` is asked
before any credential check that is not a cache hit, so a blocked address is refused before any
key lookup, argon2 verification or token check. A credential the first provider already holds
verified in its cache (``cached()``: no I/O, no secret check, so presenting it tests no guess)
skips that lookup unless the guard's optional ``suspect(ip)`` says this process saw a failure
from the address (or the storage fails closed); a guard without ``suspect`` is asked every time.
The cache TTLs, expiry checks and revocation (``IdentityStore.invalidate``) are unchanged: the
warm path reads the same caches that ``authenticate`` reads first.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tframex_asgi.auth.base import AuthProvider, CredentialError, Credentials, IdPUnavailableError
from tframex_asgi.auth.principal import set_anonymous, set_principal
from tframex_asgi.catalog.routes import DEFAULT_PUBLIC_PATHS
from tframex_asgi.context import get_state
from tframex_asgi.errors import ServiceUnavailableError, StorageError
from tframex_asgi.http import send_json_error

if TYPE_CHECKING:
    from tframex_asgi.types import ASGIApp, Receive, Scope, Send

__all__ = ["AuthenticationMiddleware"]

logger = logging.getLogger("tframex_asgi.auth")

# Headers some proxies and apps read as identity. A client must never set identity, so they are
# removed before the app sees the request.
SPOOFABLE = frozenset(
    {
        b"x-user-id",
        b"x-user",
        b"x-username",
        b"x-role",
        b"x-roles",
        b"x-remote-user",
        b"remote-user",
        b"x-forwarded-user",
        b"x-auth-user",
        b"x-authenticated-user",
        b"x-permissions",
        b"x-scopes",
    }
)

_AUTHORIZATION, _API_KEY, _SPOOFED = 1, 2, 3
_NO_CREDENTIALS = Credentials()


class AuthenticationMiddleware:
    """Pure ASGI authentication: ``scope["user"]`` / ``scope["auth"]`` / ``state["principal"]``.

    ``failures`` is the brute-force limiter (``blocked(ip)`` / ``record_failure(ip)``) when rate
    limiting is on. With ``require_auth=False`` a request without credentials passes as
    anonymous, but wrong credentials are still refused.
    """

    def __init__(
        self,
        app: ASGIApp,
        providers: Sequence[AuthProvider],
        *,
        api_key_header: str | None = None,
        public_paths: Iterable[str] = DEFAULT_PUBLIC_PATHS,
        require_auth: bool = True,
        failures: Any = None,
    ) -> None:
        if not providers:
            raise ValueError("at least one auth provider is needed")
        self.app = app
        self.providers = tuple(providers)
        self.api_key_header = api_key_header.lower().encode("latin-1") if api_key_header else None
        self.public_paths = frozenset(public_paths)
        self.require_auth = require_auth
        self.failures = failures
        # Optional capability of the brute-force guard (contracts.md only promises blocked and
        # record_failure): without it, the guard is asked on every request.
        self._suspect = getattr(failures, "suspect", None)
        # Providers that can answer from their cache without I/O (optional ``cached``).
        self._cached = {id(p): fn for p in self.providers if (fn := getattr(p, "cached", None)) is not None}
        self.challenges = [(b"www-authenticate", p.challenge()) for p in self.providers]
        kinds: dict[bytes, int] = dict.fromkeys(SPOOFABLE, _SPOOFED)
        if self.api_key_header is not None:
            kinds[self.api_key_header] = _API_KEY
        # Set last: a directly built layer with api_key_header="Authorization" still reads it as
        # Authorization (Bearer API keys included), never as a raw API key header.
        kinds[b"authorization"] = _AUTHORIZATION
        self._header_kinds = kinds

    def _credentials(self, scope: Scope) -> Credentials:
        authorization: str | None = None
        api_key: str | None = None
        ambiguous: str | None = None
        spoofed = False
        kinds = self._header_kinds
        # One dict lookup per header: most headers are none of ours.
        for name, value in scope.get("headers", ()):
            kind = kinds.get(name)
            if kind is None:
                continue
            if kind == _AUTHORIZATION:
                if authorization is not None:
                    ambiguous = "authorization"
                authorization = value.decode("latin-1")
            elif kind == _API_KEY:
                if api_key is not None:
                    ambiguous = "api_key"
                api_key = value.decode("latin-1").strip()
            else:
                spoofed = True
        if spoofed:
            scope["headers"] = [(n, v) for n, v in scope["headers"] if n not in SPOOFABLE]
        if authorization is None and api_key is None:
            return _NO_CREDENTIALS
        return Credentials(authorization, api_key, ambiguous)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        creds = self._credentials(scope)
        if scope["path"] in self.public_paths:
            set_anonymous(scope)
            await self.app(scope, receive, send)
            return
        state = get_state(scope)
        if creds.ambiguous:
            await self._reject(scope, send, 401, "invalid_credentials")
            return
        if creds.authorization is not None and creds.api_key is not None:
            await self._several(scope, send, state)
            return
        offered = [(p, c) for p in self.providers if (c := p.offered(creds)) is not None]
        if not offered and creds.authorization is None and creds.api_key is None:
            if self.require_auth:
                await self._reject(scope, send, 401, "missing_credentials")
                return
            set_anonymous(scope)
            await self.app(scope, receive, send)
            return
        # From here credentials were offered (possibly in a scheme no provider takes: refused).

        failures = self.failures
        ip = (state.get("client_ip") or (scope.get("client") or (None,))[0]) if failures is not None else None
        if offered:
            # Warm path: the first offered credential is one this process verified (cache hit).
            # Presenting it tests no guess, so the brute-force lookup is skipped unless the guard
            # says this address is suspect here (see ratelimit/bruteforce.py for the guarantee).
            provider, credential = offered[0]
            lookup = self._cached.get(id(provider))
            principal = lookup(credential) if lookup is not None else None
            if principal is not None and (failures is None or (self._suspect is not None and not self._suspect(ip))):
                set_principal(scope, principal, state)
                await self.app(scope, receive, send)
                return
        if failures is not None:
            try:
                wait = await failures.blocked(ip)
            except ServiceUnavailableError as exc:
                # The guard's storage is down and the policy fails closed: the rate limiter's
                # 503, never a "you are blocked" for a caller who may hold a valid credential.
                await self._reject(scope, send, 503, exc.code, retry_after=getattr(exc, "retry_after", 1.0))
                return
            if wait:
                await self._reject(scope, send, 429, "auth_failures_blocked", retry_after=wait)
                return
        reason: str | None = None
        unavailable = False
        for provider, credential in offered:
            try:
                principal = await provider.authenticate(credential, scope)
            except CredentialError as exc:
                reason = reason or exc.reason
                continue
            except (IdPUnavailableError, StorageError, ServiceUnavailableError) as exc:
                # Fail closed: without the IdP or the store we cannot say yes, and must not say "wrong".
                logger.warning("%s authentication unavailable: %s", provider.name, type(exc).__name__)
                unavailable = True
                continue
            set_principal(scope, principal, state)
            await self.app(scope, receive, send)
            return
        if unavailable:
            await self._reject(scope, send, 503, "idp_unavailable")
            return
        if failures is not None:
            await failures.record_failure(ip)
        await self._reject(scope, send, 401, reason or "invalid_credentials")

    async def _several(self, scope: Scope, send: Send, state: Any) -> None:
        """Two credentials (``Authorization`` and the API-key header) in one request: refused,
        whatever the provider order, and both counted as failed logins without checking either.
        Otherwise a valid key of one's own would carry a password guess for someone else past
        the brute-force guard (the guess fails, the key wins: never counted)."""
        failures = self.failures
        if failures is not None:
            ip = state.get("client_ip") or (scope.get("client") or (None,))[0]
            wait = await failures.blocked(ip)
            if wait:
                await self._reject(scope, send, 429, "auth_failures_blocked", retry_after=wait)
                return
            for _ in range(2):
                await failures.record_failure(ip)
        await self._reject(scope, send, 401, "multiple_credentials")

    async def _reject(self, scope: Scope, send: Send, status: int, reason: str, retry_after: float = 0) -> None:
        get_state(scope)["audit_reason"] = reason
        set_anonymous(scope)
        if scope["type"] == "websocket":
            # Closing before accept makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008 if status != 503 else 1013})
            return
        if status == 401:
            message = "authentication required" if reason == "missing_credentials" else "invalid credentials"
            await send_json_error(send, 401, "unauthenticated", message, self.challenges)
        elif status == 429:
            headers = [(b"retry-after", str(max(1, math.ceil(retry_after))).encode())]
            await send_json_error(send, 429, "too_many_auth_failures", "too many failed authentications", headers)
        elif reason == "ratelimit_unavailable":
            headers = [(b"retry-after", str(max(1, math.ceil(retry_after))).encode())]
            message = "rate limiting is temporarily unavailable: retry later"
            await send_json_error(send, 503, "ratelimit_unavailable", message, headers)
        else:
            await send_json_error(
                send, 503, "idp_unavailable", "authentication is temporarily unavailable", [(b"retry-after", b"5")]
            )
