"""Conversations and their messages, kept in the seed's ``conversations``/``messages`` tables.

Written on the request path (they are the user's data and the next turn reads them); execution
records go through the batched writer instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tframex import Message

from tframex_asgi.clock import Clock
from tframex_asgi.errors import NotFoundError, ValidationError
from tframex_asgi.storage.base import BaseStorage, Row

__all__ = ["ConversationStore", "parse_conversation_id"]


def parse_conversation_id(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValidationError("'conversation_id' must be a UUID") from None


def _jsonable(row: Row) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


class ConversationStore:
    def __init__(self, storage: BaseStorage, clock: Clock) -> None:
        self.storage = storage
        self.clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.time(), UTC).replace(tzinfo=None)

    async def get(self, conversation_id: str) -> Row | None:
        rows = await self.storage.read("conversations", {"id": conversation_id}, limit=1)
        return rows[0] if rows else None

    async def open(
        self, conversation_id: str | None, user_id: str | None, agent_name: str, title: str | None, can_access: Any
    ) -> str:
        """The id of an existing conversation the caller may use, or of a new one."""
        if conversation_id is None:
            new_id = str(uuid.uuid4())
            await self.storage.write(
                "conversations",
                {
                    "id": new_id,
                    "user_id": user_id,
                    "agent_name": agent_name,
                    "title": (title or "")[:500] or None,
                    "created_at": self._now(),
                    "updated_at": self._now(),
                },
            )
            return new_id
        row = await self.get(conversation_id)
        if row is None:
            await self.storage.write(
                "conversations",
                {
                    "id": conversation_id,
                    "user_id": user_id,
                    "agent_name": agent_name,
                    "title": (title or "")[:500] or None,
                    "created_at": self._now(),
                    "updated_at": self._now(),
                },
            )
            return conversation_id
        if not can_access(row.get("user_id")):
            # Someone else's conversation looks exactly like a missing one.
            raise NotFoundError("no such conversation")
        return conversation_id

    async def history(self, conversation_id: str, limit: int) -> list[Message]:
        if limit <= 0:
            return []
        total = await self.storage.count("messages", {"conversation_id": conversation_id})
        rows = await self.storage.read(
            "messages",
            {"conversation_id": conversation_id},
            order_by="created_at",
            offset=max(0, total - limit),
            limit=limit,
        )
        return [Message(role=r["role"], content=r.get("content")) for r in rows if r["role"] in ("user", "assistant")]

    async def append(self, conversation_id: str, messages: Sequence[tuple[str, str | None]]) -> None:
        base = self._now()
        rows = [
            {
                "id": str(uuid.uuid4()),
                "conversation_id": conversation_id,
                "role": role,
                "content": content,
                # Distinct, ordered timestamps keep a turn's messages in order on every backend
                # (whole microseconds: adding 1e-6 to a float epoch can round to the same one).
                "created_at": base + timedelta(microseconds=i),
            }
            for i, (role, content) in enumerate(messages)
        ]
        await self.storage.write_many("messages", rows)
        await self.storage.update("conversations", conversation_id, {"updated_at": self._now()})

    async def list_for(self, user_id: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        filters = {"user_id": user_id} if user_id is not None else None
        rows = await self.storage.read("conversations", filters, order_by="-created_at", limit=limit, offset=offset)
        return [_jsonable(r) for r in rows]

    async def messages(self, conversation_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        rows = await self.storage.read(
            "messages", {"conversation_id": conversation_id}, order_by="created_at", limit=limit
        )
        return [_jsonable(r) for r in rows]

    async def delete(self, conversation_id: str) -> bool:
        # Messages go with it (ON DELETE CASCADE on SQL backends; explicit for the others).
        for row in await self.storage.read("messages", {"conversation_id": conversation_id}):
            await self.storage.delete("messages", row["id"])
        # Execution records outlive the conversation (their FK has no cascade): unlink them.
        for row in await self.storage.read("agent_executions", {"conversation_id": conversation_id}):
            await self.storage.update("agent_executions", row["id"], {"conversation_id": None})
        return await self.storage.delete("conversations", conversation_id)
