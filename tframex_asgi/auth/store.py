"""Users and API keys, stored through the persistence layer (tables ``users`` and ``api_keys``).

API keys look like ``tfx_<12 hex>_<43 url-safe chars>``: 32 random bytes of secret after a
public lookup prefix. Only ``sha256`` of the whole key is stored: the secret is high-entropy,
so a slow hash would add cost without adding safety. Passwords use argon2id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tframex_asgi.auth.base import CredentialError
from tframex_asgi.auth.cache import TTLCache
from tframex_asgi.auth.changes import publish_change
from tframex_asgi.auth.passwords import PasswordHasher
from tframex_asgi.errors import ConflictError, ValidationError
from tframex_asgi.util import as_naive_utc, is_uuid, naive_utc

if TYPE_CHECKING:
    from tframex_asgi.auth.principal import Principal
    from tframex_asgi.clock import Clock
    from tframex_asgi.services import Services
    from tframex_asgi.storage.base import BaseStorage, Row

__all__ = ["KEY_PATTERN", "IdentityStore", "get_identity_store", "key_digest", "to_epoch"]

logger = logging.getLogger("tframex_asgi.auth")
KEY_PATTERN = re.compile(r"^(tfx_[0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
_SECRET_COLUMNS = ("password_hash", "key_hash")
_USERNAME = re.compile(r"^[^\x00-\x1f\x7f:]{1,255}$")  # no controls; no ':' (Basic splits on it)


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def to_epoch(value: Any) -> float | None:
    """A stored timestamp as epoch seconds (backends give datetimes, ISO strings or numbers)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        # TIMESTAMP columns have no zone; we always write UTC.
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    raise ValidationError(f"not a timestamp: {type(value).__name__}")


def _is_active(row: Row) -> bool:
    value = row.get("is_active")
    if value is None:  # the column defaults to TRUE
        return True
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "f", "no")
    return bool(value)


def _scopes(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = json.loads(value) if value else []
    return tuple(str(s) for s in value or ())


def public(row: Row) -> Row:
    """A row safe to hand out: no hash columns, scopes decoded."""
    out = {k: v for k, v in row.items() if k not in _SECRET_COLUMNS}
    if "scopes" in out:
        out["scopes"] = list(_scopes(out["scopes"]))
    return out


class IdentityStore:
    """Users and API keys, plus the short-lived caches that keep authentication off the database.

    ``key_cache`` maps a key digest to ``(principal, key expiry)``; ``login_cache`` maps a keyed
    digest of a Basic credential to its principal. ``invalidate()`` empties both; revocations,
    disabling and password changes made by another process empty them within a second
    (:mod:`tframex_asgi.auth.changes`).
    """

    def __init__(
        self,
        storage: BaseStorage,
        clock: Clock,
        *,
        hasher: PasswordHasher | None = None,
        key_cache_ttl: float = 30.0,
        login_cache_ttl: float = 30.0,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.hasher = hasher or PasswordHasher()
        self.key_cache: TTLCache[tuple[Principal, float | None]] = TTLCache(key_cache_ttl, clock.monotonic)
        self.login_cache: TTLCache[Principal] = TTLCache(login_cache_ttl, clock.monotonic)
        # Per-process pepper: cached login digests are useless outside this process.
        self.login_pepper = secrets.token_bytes(32)
        self._tasks: set[asyncio.Task[None]] = set()

    def _now(self) -> datetime:
        # Naive UTC: TIMESTAMP (without time zone) columns accept it on every backend.
        return naive_utc(self.clock.time())

    def invalidate(self) -> None:
        self.key_cache.clear()
        self.login_cache.clear()

    # -- users ----------------------------------------------------------------------------

    async def create_user(self, username: str, *, email: str | None = None, password: str | None = None) -> Row:
        if not isinstance(username, str) or not _USERNAME.match(username):
            raise ValidationError("username must be 1-255 characters, without ':' or control characters")
        if await self.storage.count("users", {"username": username}):
            raise ConflictError(f"user {username!r} already exists")
        if email is not None and await self.storage.count("users", {"email": email}):
            raise ConflictError("a user with this email already exists")
        now = self._now()
        row: Row = {
            "id": str(uuid.uuid4()),
            "username": username,
            "email": email,
            "password_hash": await self.hasher.hash(password) if password else None,
            "created_at": now,
            "updated_at": now,
            "is_active": True,
        }
        await self.storage.write("users", row)
        return public(row)

    async def get_user(self, user_id: str) -> Row | None:
        if not is_uuid(user_id):
            return None
        row = await self._user({"id": user_id})
        return public(row) if row else None

    async def get_user_by_username(self, name: str) -> Row | None:
        row = await self._user({"username": name})
        return public(row) if row else None

    async def _user(self, filters: Mapping[str, Any]) -> Row | None:
        rows = await self.storage.read("users", filters, limit=1)
        return rows[0] if rows else None

    async def list_users(self, limit: int = 100, offset: int = 0) -> list[Row]:
        rows = await self.storage.read("users", None, limit=limit, offset=offset, order_by="username")
        return [public(r) for r in rows]

    async def set_active(self, user_id: str, active: bool) -> bool:
        if not is_uuid(user_id):
            return False
        changed = await self.storage.update("users", user_id, {"is_active": bool(active), "updated_at": self._now()})
        self.invalidate()
        if changed:
            await publish_change(self.storage, self.clock, "user.enable" if active else "user.disable", "user", user_id)
        return changed

    async def set_password(self, user_id: str, password: str) -> bool:
        hashed = await self.hasher.hash(password)
        changed = await self.storage.update("users", user_id, {"password_hash": hashed, "updated_at": self._now()})
        self.invalidate()
        if changed:
            await publish_change(self.storage, self.clock, "user.password", "user", user_id)
        return changed

    async def check_password(self, username: str, password: str) -> Row:
        """The user row for a correct password, else CredentialError. An unknown user costs one
        argon2 verification like a known one; a disabled user is told apart only after the
        password matched (and only in the audit reason)."""
        row = await self._user({"username": username}) if _USERNAME.match(username) else None
        stored = row.get("password_hash") if row else None
        if not await self.hasher.verify(stored, password):
            raise CredentialError("invalid_credentials")
        assert row is not None and stored is not None
        if not _is_active(row):
            raise CredentialError("disabled_user")
        if self.hasher.needs_rehash(stored):
            self._background(self._rehash(row["id"], password))
        return public(row)

    async def _rehash(self, user_id: str, password: str) -> None:
        await self.storage.update("users", user_id, {"password_hash": await self.hasher.hash(password)})

    # -- API keys -------------------------------------------------------------------------

    async def create_api_key(
        self,
        user_id: str,
        *,
        name: str | None = None,
        scopes: Iterable[str] = (),
        expires_at: datetime | None = None,
    ) -> tuple[Row, str]:
        """A new key for ``user_id``: the row (without its hash) and the key itself, shown once."""
        if not is_uuid(user_id) or await self._user({"id": user_id}) is None:
            raise ValidationError(f"no user with id {user_id!r}")
        if expires_at is not None:
            expires_at = as_naive_utc(expires_at)
        prefix = "tfx_" + secrets.token_hex(6)
        key = f"{prefix}_{secrets.token_urlsafe(32)}"
        row: Row = {
            "id": str(uuid.uuid4()),
            "user_id": user_id,
            "name": name,
            "prefix": prefix,
            "key_hash": "sha256:" + key_digest(key).hex(),
            "scopes": sorted(set(scopes)),
            "created_at": self._now(),
            "expires_at": expires_at,
            "revoked_at": None,
            "last_used_at": None,
        }
        await self.storage.write("api_keys", row)
        return public(row), key

    async def list_api_keys(self, user_id: str | None = None) -> list[Row]:
        if user_id is not None and not is_uuid(user_id):
            return []
        filters = {"user_id": user_id} if user_id is not None else None
        return [public(r) for r in await self.storage.read("api_keys", filters, order_by="-created_at")]

    async def revoke_api_key(self, key_id: str) -> bool:
        if not is_uuid(key_id):
            return False
        rows = await self.storage.read("api_keys", {"id": key_id}, limit=1)
        if not rows:
            return False
        fresh = rows[0].get("revoked_at") is None
        if fresh:
            await self.storage.update("api_keys", key_id, {"revoked_at": self._now()})
        self.invalidate()
        if fresh:  # other processes drop their caches within a second
            await publish_change(self.storage, self.clock, "api_key.revoke", "api_key", key_id)
        return True

    async def check_api_key(self, key: str) -> tuple[Row, Row]:
        """``(key row, user row)`` for a valid key, else CredentialError with the reason. Status
        (revoked, expired, disabled) is only looked at once the hash matched."""
        match = KEY_PATTERN.match(key)
        if match is None:
            raise CredentialError("invalid_credentials")
        rows = await self.storage.read("api_keys", {"prefix": match.group(1)}, limit=1)
        computed = "sha256:" + key_digest(key).hex()
        # Compare against a placeholder when the prefix is unknown: same work either way.
        stored = str(rows[0].get("key_hash") or "") if rows else "sha256:" + "0" * 64
        if not hmac.compare_digest(stored.encode(), computed.encode()) or not rows:
            raise CredentialError("invalid_credentials")
        row = rows[0]
        if row.get("revoked_at") is not None:
            raise CredentialError("revoked_key")
        expires = to_epoch(row.get("expires_at"))
        if expires is not None and expires <= self.clock.time():
            raise CredentialError("expired_key")
        user = await self._user({"id": row["user_id"]})
        if user is None:
            raise CredentialError("invalid_credentials")
        if not _is_active(user):
            raise CredentialError("disabled_user")
        self._background(self.storage.update("api_keys", row["id"], {"last_used_at": self._now()}))
        return public(row), public(user)

    def _background(self, coro: Any) -> None:
        # Bookkeeping writes must neither slow nor fail the request that caused them.
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("identity bookkeeping write failed: %r", task.exception())

    async def drain(self) -> None:
        """Wait for background bookkeeping writes (shutdown and tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def get_identity_store(services: Services) -> IdentityStore:
    """The stack's identity store: ``services.identity``."""
    return services.identity
