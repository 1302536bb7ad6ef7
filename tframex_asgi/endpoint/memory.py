"""Conversation memory that returns the NEWEST messages.

tframex 1.1.0's ``InMemoryMemoryStore.get_history(limit=10)`` returns the oldest ten, so a long
conversation would forget everything recent. It also hands what it is told to the turn being
captured (:mod:`tframex_asgi.endpoint.turns`), so the whole turn can be stored.
"""

from __future__ import annotations

from collections.abc import Iterable

from tframex import InMemoryMemoryStore, Message

from tframex_asgi.endpoint.turns import current_turn

__all__ = ["TailMemory"]


class TailMemory(InMemoryMemoryStore):  # type: ignore[misc]
    def __init__(self, history: Iterable[Message] = (), max_history_size: int | None = None) -> None:
        super().__init__(max_history_size=max_history_size)
        self._history.extend(history)

    async def add_message(self, message: Message) -> None:
        turn = current_turn.get()
        if turn is not None:
            turn.record(self, message)
        await super().add_message(message)

    async def get_history(
        self, limit: int | None = None, offset: int = 0, roles: list[str] | None = None
    ) -> list[Message]:
        messages: list[Message] = [m for m in self._history if not roles or m.role in roles]
        if offset:
            messages = messages[: len(messages) - offset]
        if limit is not None:
            messages = messages[-limit:] if limit > 0 else []
        # A window must not open on tool results whose assistant tool_calls message was cut off.
        while messages and messages[0].role == "tool":
            messages.pop(0)
        return messages
