"""Password hashing with argon2id, always off the event loop.

Verification of an unknown user runs against a dummy hash made with the same parameters, so
"no such user" and "wrong password" cost the same time and give the same answer.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["PasswordHasher"]


class PasswordHasher:
    """argon2id (RFC 9106 low-memory profile by default) with hashing in worker threads.

    ``max_concurrency`` bounds how many hashes run at once: a flood of Basic logins queues here
    instead of taking every thread and all the memory (each hash holds ``memory_cost`` KiB).
    """

    def __init__(
        self,
        *,
        time_cost: int = 3,
        memory_cost: int = 65536,
        parallelism: int = 4,
        max_concurrency: int = 4,
    ) -> None:
        self._hasher = _Argon2(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID)
        self._limit = asyncio.Semaphore(max_concurrency)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._limit:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; a missing hash is checked against the dummy one so the
        time taken does not tell whether the user exists."""
        target = stored_hash or await self._dummy_hash()
        async with self._limit:
            ok = await asyncio.to_thread(self._verify, target, password)
        return ok and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            return False

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError, ValueError):
            return False

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        return self._dummy
