"""``POST /v1/responses`` with ``stream: true``: the Responses API's typed server-sent events.

``response.created`` / ``response.in_progress``, then per output item ``response.output_item.added``,
its content (``response.content_part.added``, ``response.output_text.delta`` ... ``.done``, or
``response.function_call_arguments.delta``/``.done`` for a client tool call) and
``response.output_item.done``; last ``response.completed``, or ``response.failed`` with the error.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from tframex_asgi.endpoint.handlers import failure
from tframex_asgi.endpoint.openai.responses import Turn, call_item, message_item
from tframex_asgi.endpoint.sse import end_with, sse

if TYPE_CHECKING:
    from tframex_asgi.endpoint.app import TFrameXEndpoint

__all__ = ["stream_response"]


class _Events:
    def __init__(self) -> None:
        self._seq = itertools.count()

    def __call__(self, kind: str, **data: Any) -> bytes:
        return sse({"type": kind, "sequence_number": next(self._seq), **data}, kind)


def _text_open(ev: _Events, item_id: str) -> list[bytes]:
    part = {"type": "output_text", "text": "", "annotations": []}
    return [
        ev("response.output_item.added", output_index=0, item=message_item(item_id, "", "in_progress")),
        ev("response.content_part.added", item_id=item_id, output_index=0, content_index=0, part=part),
    ]


def _text_close(ev: _Events, item_id: str, text: str) -> list[bytes]:
    part = {"type": "output_text", "text": text, "annotations": []}
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    return [
        ev("response.output_text.done", **where, text=text, logprobs=[]),
        ev("response.content_part.done", **where, part=part),
        ev("response.output_item.done", output_index=0, item=message_item(item_id, text)),
    ]


def _call_events(ev: _Events, index: int, item: dict[str, Any]) -> list[bytes]:
    where = {"item_id": item["id"], "output_index": index}
    return [
        ev("response.output_item.added", output_index=index, item={**item, "arguments": "", "status": "in_progress"}),
        ev("response.function_call_arguments.delta", **where, delta=item["arguments"]),
        ev("response.function_call_arguments.done", **where, arguments=item["arguments"]),
        ev("response.output_item.done", output_index=index, item=item),
    ]


async def stream_response(ep: TFrameXEndpoint, turn: Turn) -> AsyncIterator[bytes]:
    ev = _Events()
    yield ev("response.created", response=turn.body("in_progress", []))
    yield ev("response.in_progress", response=turn.body("in_progress", []))
    item_id = f"msg_{uuid.uuid4().hex}"
    parts: list[str] = []
    chunks = ep.runner.stream_agent(turn.req.model, turn.input, turn.info, turn.history, turn.overlay)
    try:
        async for chunk in chunks:
            if not chunk.content:
                continue
            if not parts:
                for event in _text_open(ev, item_id):
                    yield event
            parts.append(chunk.content)
            where = {"item_id": item_id, "output_index": 0, "content_index": 0}
            yield ev("response.output_text.delta", **where, delta=chunk.content, logprobs=[])
        text = "".join(parts)
        await turn.store(ep, text or None)
    except asyncio.CancelledError as exc:
        await end_with(chunks, exc)  # cancelled at our yield: the run ends with the same cause
        raise
    except Exception as exc:
        err = failure(exc)
        yield ev("response.failed", response=turn.body("failed", [], {"code": err.code, "message": err.message}))
        return
    output: list[dict[str, Any]] = []
    if parts or not turn.calls:
        if not parts:
            for event in _text_open(ev, item_id):
                yield event
        for event in _text_close(ev, item_id, text):
            yield event
        output.append(message_item(item_id, text))
    for call in turn.calls:
        item = call_item(call)
        for event in _call_events(ev, len(output), item):
            yield event
        output.append(item)
    yield ev("response.completed", response=turn.body("completed", output))
