"""Talking to identity providers: one shared httpx client, JSON fetches that fail as 503, and
the verification keys (static, or a JWKS looked up by ``kid``).

Keys come only from configuration or the configured JWKS URL: a token's ``jku``, ``x5u``,
``x5c`` or embedded ``jwk`` header is never followed or trusted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key

from tframex_asgi.auth.base import CredentialError, IdPUnavailableError
from tframex_asgi.config.keys import load_static_key

if TYPE_CHECKING:
    from tframex_asgi.clock import Clock

__all__ = ["HttpClient", "KeySource", "alg_key_type", "load_static_key"]

logger = logging.getLogger("tframex_asgi.auth")
_MAX_DOCUMENT_BYTES = 1024 * 1024
_KEY_TYPES = {"HS": "oct", "RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


def alg_key_type(alg: str) -> str:
    """The only key type an algorithm may be verified with (HS256 never gets an RSA key)."""
    return _KEY_TYPES[alg[:2]]


class HttpClient:
    """One ``httpx.AsyncClient`` for discovery, JWKS and introspection, opened at startup and
    closed at shutdown (created on first use when no lifespan ran)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # Redirects are not followed: an IdP document comes from the URL we were given.
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        return self._client

    async def start(self) -> None:
        _ = self.client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def get_json(self, url: str) -> dict[str, Any]:
        return await self._json(url, self.client.get(url, headers={"accept": "application/json"}))

    async def post_json(self, url: str, data: Mapping[str, str], auth: tuple[str, str]) -> dict[str, Any]:
        request = self.client.post(
            url, data=dict(data), auth=httpx.BasicAuth(*auth), headers={"accept": "application/json"}
        )
        return await self._json(url, request)

    async def _json(self, url: str, request: Any) -> dict[str, Any]:
        try:
            resp: httpx.Response = await request
        except httpx.HTTPError as exc:
            raise IdPUnavailableError(f"{url}: {type(exc).__name__}") from exc
        if resp.status_code != 200 or len(resp.content) > _MAX_DOCUMENT_BYTES:
            raise IdPUnavailableError(f"{url}: HTTP {resp.status_code}")
        try:
            body = json.loads(resp.content)
        except ValueError as exc:
            raise IdPUnavailableError(f"{url}: not JSON") from exc
        if not isinstance(body, dict):
            raise IdPUnavailableError(f"{url}: not a JSON object")
        return body


def _jwks_keys(document: Mapping[str, Any]) -> list[Key]:
    keys: list[Key] = []
    for entry in document.get("keys") or ():
        # Only public signing keys: a symmetric key published in a JWKS would let anyone sign.
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP") or entry.get("use") == "enc":
            continue
        public = {k: v for k, v in entry.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
        try:
            keys.append(import_key(public))
        except (JoseError, ValueError, TypeError):
            logger.warning("skipping an unusable key in the JWKS (kid %r)", entry.get("kid"))
    return keys


class KeySource:
    """Verification keys by ``kid``: static keys, plus a JWKS fetched on first use, refreshed
    after ``cache_ttl`` and at most once per unknown kid (and not more often than
    ``min_refresh`` seconds, so random kids cannot make us hammer the IdP)."""

    def __init__(
        self,
        clock: Clock,
        *,
        static: Iterable[Key] = (),
        jwks_url: str | None = None,
        http: HttpClient | None = None,
        cache_ttl: float = 3600.0,
        min_refresh: float = 30.0,
    ) -> None:
        self.clock = clock
        self.static = list(static)
        self.jwks_url = jwks_url
        self.http = http
        self.cache_ttl = cache_ttl
        self.min_refresh = min_refresh
        self._remote: list[Key] = []
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    @property
    def keys(self) -> list[Key]:
        return self.static + self._remote

    async def key_for(self, kid: str | None, alg: str) -> Key:
        if self.jwks_url and (self._fetched_at is None or self._age() >= self.cache_ttl):
            await self._refresh(force=self._fetched_at is None)
        key = self._pick(kid, alg)
        if key is None and kid is not None and self.jwks_url and self._age() >= self.min_refresh:
            await self._refresh(force=False, unless_newer_than=self._fetched_at)
            key = self._pick(kid, alg)
        if key is None:
            raise CredentialError("invalid_token")
        return key

    def _age(self) -> float:
        return float("inf") if self._fetched_at is None else self.clock.monotonic() - self._fetched_at

    def _pick(self, kid: str | None, alg: str) -> Key | None:
        kty = alg_key_type(alg)
        usable = [k for k in self.keys if k.key_type == kty and k.get("alg") in (None, alg)]
        if kid is not None:
            for key in usable:
                if key.kid == kid:
                    return key
            # A configured key without a kid is "the" key: the token's kid cannot select another.
            usable = [k for k in self.static if k in usable and k.kid is None]
        # Otherwise only an unambiguous key will do.
        return usable[0] if len(usable) == 1 else None

    async def _refresh(self, *, force: bool, unless_newer_than: float | None = None) -> None:
        assert self.jwks_url is not None and self.http is not None
        async with self._lock:
            if unless_newer_than is not None and self._fetched_at != unless_newer_than:
                return  # another request refreshed while we waited
            try:
                document = await self.http.get_json(self.jwks_url)
            except IdPUnavailableError:
                if force or not self._remote:
                    raise
                logger.warning("JWKS refresh from %s failed: keeping the keys we have", self.jwks_url)
                self._fetched_at = self.clock.monotonic()
                return
            self._remote = _jwks_keys(document)
            self._fetched_at = self.clock.monotonic()
