"""Conversations and their messages, kept in the seed's ``conversations``/``messages`` tables.

Written on the request path (they are the user's data and the next turn reads them); execution
records go through the batched writer instead. The seed's "conversation metadata cache": the
conversation row (owner, agent) is read once and then served from a small TTL cache shared by the
requests of one stack, so a 20-turn conversation reads it once, not 20 times.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from tframex import Message
from tframex.models.primitives import ToolCall

from tframex_asgi.clock import Clock
from tframex_asgi.errors import NotFoundError, ValidationError
from tframex_asgi.storable import storable_json, storable_text
from tframex_asgi.storage.base import BaseStorage, Row
from tframex_asgi.timefmt import utc_iso
from tframex_asgi.util import naive_utc

__all__ = [
    "ConversationCache",
    "ConversationStore",
    "conversation_cache",
    "conversation_owner",
    "parse_conversation_id",
]


def parse_conversation_id(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValidationError("'conversation_id' must be a UUID") from None


def conversation_owner(row: Row) -> str | None:
    """Who owns a conversation: the subject in its metadata, else its stored user."""
    meta = row.get("metadata")
    owner = meta.get("owner") if isinstance(meta, dict) else None
    return str(owner) if owner is not None else row.get("user_id")


def _jsonable(row: Row) -> dict[str, Any]:
    return {k: (utc_iso(v) if isinstance(v, datetime) else v) for k, v in row.items()}


def _message(row: Row) -> Message:
    calls = row.get("tool_calls")
    return Message(
        role=row["role"],
        content=row.get("content"),
        tool_calls=[ToolCall.model_validate(c) for c in calls] if calls else None,
        tool_call_id=row.get("tool_call_id"),
        name=row.get("name"),
    )


class ConversationCache:
    """Conversation rows by id for ``ttl`` seconds, at most ``size`` of them.

    Deleting through this worker forgets the row at once; another worker's delete is seen after
    ``ttl`` at the latest (the owner of a conversation never changes, so a cached row can only be
    stale by having been deleted).
    """

    def __init__(self, clock: Clock, ttl: float = 30.0, size: int = 10_000) -> None:
        self.clock = clock
        self.ttl = ttl
        self.size = size
        self._rows: OrderedDict[str, tuple[float, Row]] = OrderedDict()

    def get(self, conversation_id: str) -> Row | None:
        hit = self._rows.get(conversation_id)
        if hit is None:
            return None
        if self.clock.monotonic() - hit[0] >= self.ttl:
            del self._rows[conversation_id]
            return None
        return hit[1]

    def put(self, conversation_id: str, row: Row) -> None:
        self._rows[conversation_id] = (self.clock.monotonic(), row)
        self._rows.move_to_end(conversation_id)
        while len(self._rows) > self.size:
            self._rows.popitem(last=False)

    def drop(self, conversation_id: str) -> None:
        self._rows.pop(conversation_id, None)


def conversation_cache(services: Any) -> ConversationCache:
    """The cache shared by one stack's requests and in-process runs (``services.conversation_cache``)."""
    cache: ConversationCache | None = services.conversation_cache
    if cache is None:
        cache = services.conversation_cache = ConversationCache(services.clock)
    return cache


class ConversationStore:
    def __init__(self, storage: BaseStorage, clock: Clock, cache: ConversationCache | None = None) -> None:
        self.storage = storage
        self.clock = clock
        self.cache = cache

    def _now(self) -> datetime:
        return naive_utc(self.clock.time())

    async def get(self, conversation_id: str) -> Row | None:
        if self.cache is not None:
            cached = self.cache.get(conversation_id)
            if cached is not None:
                return dict(cached)
        rows = await self.storage.read("conversations", {"id": conversation_id}, limit=1)
        if not rows:
            return None
        if self.cache is not None:
            self.cache.put(conversation_id, dict(rows[0]))
        return rows[0]

    async def open(
        self,
        conversation_id: str | None,
        user_id: str | None,
        owner: str | None,
        agent_name: str,
        title: str | None,
        can_access: Callable[[Row], bool],
    ) -> str:
        """The id of an existing conversation the caller may use, or of a new one.

        ``user_id`` is the stored user (foreign key, None for token identities); ``owner`` is
        the subject access checks compare (see :func:`conversation_owner`).
        """
        row = await self.get(conversation_id) if conversation_id is not None else None
        if row is not None:
            if not can_access(row):
                # Someone else's conversation looks exactly like a missing one.
                raise NotFoundError("no such conversation")
            return str(row["id"])
        new_id = conversation_id or str(uuid.uuid4())
        row = {
            "id": new_id,
            "user_id": user_id,
            "agent_name": agent_name,
            "title": (title or "")[:500] or None,
            "created_at": self._now(),
            "updated_at": self._now(),
            "metadata": {"owner": owner} if owner is not None else None,
        }
        await self.storage.write("conversations", dict(row))
        if self.cache is not None:
            self.cache.put(new_id, row)
        return new_id

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
        return [_message(r) for r in rows if r["role"] in ("user", "assistant", "tool", "system")]

    async def append(self, conversation_id: str, messages: Sequence[tuple[str, str | None] | Message]) -> None:
        """Store a turn: ``(role, text)`` pairs, or messages with their tool calls/results."""
        base = self._now()
        rows = []
        for i, item in enumerate(messages):
            m = item if isinstance(item, Message) else Message(role=item[0], content=item[1])
            row: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "conversation_id": conversation_id,
                "role": m.role,
                # The user's text was checked at the door; a model's output may still hold
                # NUL or a lone surrogate, stored replaced rather than refused (storable.py).
                "content": storable_text(m.content) if m.content is not None else None,
                # Distinct, ordered timestamps keep a turn's messages in order on every backend
                # (whole microseconds: adding 1e-6 to a float epoch can round to the same one).
                "created_at": base + timedelta(microseconds=i),
            }
            if m.tool_calls:
                row["tool_calls"] = storable_json([c.model_dump() for c in m.tool_calls])
            if m.tool_call_id is not None:
                row["tool_call_id"], row["name"] = storable_text(m.tool_call_id), m.name and storable_text(m.name)
            rows.append(row)
        await self.storage.write_many("messages", rows)
        await self.storage.update("conversations", conversation_id, {"updated_at": self._now()})

    async def list_for(
        self, who: tuple[str | None, str | None] | None, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        """Newest first. ``who`` is ``(user_id, owner)`` of the caller, None for every row."""
        if who is None or who == (None, None):
            rows = await self.storage.read("conversations", None, order_by="-created_at", limit=limit, offset=offset)
        elif who[0] is not None:
            rows = await self.storage.read(
                "conversations", {"user_id": who[0]}, order_by="-created_at", limit=limit, offset=offset
            )
        else:
            # Token identities have no users row to filter on: match the owner subject.
            unowned = await self.storage.read("conversations", {"user_id": None}, order_by="-created_at")
            rows = [r for r in unowned if conversation_owner(r) == who[1]][offset : offset + limit]
        return [_jsonable(r) for r in rows]

    async def messages(self, conversation_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        rows = await self.storage.read(
            "messages", {"conversation_id": conversation_id}, order_by="created_at", limit=limit
        )
        return [_jsonable(r) for r in rows]

    async def delete(self, conversation_id: str) -> bool:
        if self.cache is not None:
            self.cache.drop(conversation_id)
        # Messages go with it (ON DELETE CASCADE on SQL backends; explicit for the others).
        for row in await self.storage.read("messages", {"conversation_id": conversation_id}):
            await self.storage.delete("messages", row["id"])
        # Execution records outlive the conversation (their FK has no cascade): unlink them.
        for row in await self.storage.read("agent_executions", {"conversation_id": conversation_id}):
            await self.storage.update("agent_executions", row["id"], {"conversation_id": None})
        return await self.storage.delete("conversations", conversation_id)
