"""The whole turn of an agent run, as its memory saw it: the user message, each assistant message
with ``tool_calls``, each ``role='tool'`` result (``tool_call_id``, ``name``) and the answer.

Capture it around a run and store it with :meth:`ConversationStore.append`::

    with capture_turn() as turn:
        result = await runner.run_agent(name, text, info, history)
    await conversations.append(cid, turn.messages_or([("user", text), ("assistant", result.content)]))

The run's top-level agent is the first memory a message is added to (tframex adds the user
message before anything else); agents called as tools have memories of their own, whose
messages are not part of this conversation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from tframex import Message

__all__ = ["Turn", "capture_turn", "current_turn"]


class Turn:
    __slots__ = ("messages", "owner")

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.owner: object | None = None

    def record(self, memory: object, message: Message) -> None:
        if self.owner is None:
            self.owner = memory
        if self.owner is memory:
            self.messages.append(message)

    def messages_or(
        self, fallback: Sequence[tuple[str, str | None] | Message]
    ) -> Sequence[tuple[str, str | None] | Message]:
        """The captured messages, or ``fallback`` when the agent kept no memory of ours (an
        agent with its own ``memory_override``)."""
        return self.messages if self.messages else fallback


current_turn: ContextVar[Turn | None] = ContextVar("tframex_asgi_turn", default=None)


@contextmanager
def capture_turn() -> Iterator[Turn]:
    turn = Turn()
    token = current_turn.set(turn)
    try:
        yield turn
    finally:
        current_turn.reset(token)
