"""``POST /v1/responses``: open the turn (history of ``previous_response_id``, the stored
conversation), then answer it whole or stream it (:mod:`.responses_stream`)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from tframex import Message

from tframex_asgi.endpoint.handlers import (
    caller_permissions,
    failure,
    json_body,
    owner_check,
    principal_ids,
    require_data_write,
    run_info,
)
from tframex_asgi.endpoint.openai.messages import split_turn
from tframex_asgi.endpoint.openai.models import check_model
from tframex_asgi.endpoint.openai.overlay import RunOverlay
from tframex_asgi.endpoint.openai.responses import (
    ResponseNotFound,
    ResponsesRequest,
    Turn,
    call_item,
    conversation_of,
    message_item,
    new_response_id,
    parse_responses_request,
)
from tframex_asgi.endpoint.openai.responses_stream import stream_response
from tframex_asgi.endpoint.sse import SSE_HEADERS, EventStream
from tframex_asgi.events import RunInfo

if TYPE_CHECKING:
    from tframex_asgi.endpoint.app import TFrameXEndpoint

__all__ = ["create_response", "open_turn"]


async def open_turn(request: Request, ep: TFrameXEndpoint, req: ResponsesRequest) -> Turn:
    history: list[Message] = []
    conversation_id: str | None = None
    if req.previous_response_id is not None:
        conversation_id = conversation_of(req.previous_response_id)
        row = await ep.conversations.get(conversation_id) if conversation_id else None
        if conversation_id is None or row is None or not owner_check(request)(row):
            raise ResponseNotFound(req.previous_response_id)
        history = await ep.conversations.history(conversation_id, ep.services.config.server.history_limit)
        while history and history[0].role == "tool":  # the window cut off the call it answers
            history.pop(0)
    params = ["previous_response_id"] * len(history) + req.params
    last, before = split_turn([*history, *req.input], params, "input", "call_id")
    if req.store and conversation_id is None:
        uid, owner = principal_ids(request)
        title = (last.content or "")[:80]
        conversation_id = await ep.conversations.open(None, uid, owner, req.model, title, owner_check(request))
    if not req.store:
        conversation_id = None
    info = run_info(request, conversation_id)
    overlay = RunOverlay(req.tools, [req.instructions] if req.instructions else [])
    created = int(ep.services.clock.time())
    return Turn(new_response_id(conversation_id), created, req, conversation_id, last, before, info, overlay)


async def create_response(request: Request, ep: TFrameXEndpoint) -> Response:
    body = await json_body(request)
    reserved = check_model(ep, body.get("model"))
    req = parse_responses_request(body, reserved)
    # Per-agent rules, and data.write for a stored turn, before anything is written or streamed.
    ep.runner.check_agent(req.model, RunInfo(permissions=caller_permissions(request)))
    if req.store:
        require_data_write(request, ep)
    turn = await open_turn(request, ep, req)
    if turn.req.stream:
        return EventStream(stream_response(ep, turn), SSE_HEADERS)  # type: ignore[return-value]
    try:
        result = await ep.runner.run_agent(turn.req.model, turn.input, turn.info, turn.history, turn.overlay)
    except Exception as exc:
        raise failure(exc) from exc
    await turn.store(ep, result.content)
    output = [call_item(c) for c in turn.calls]
    if result.content or not output:
        output.insert(0, message_item(f"msg_{uuid.uuid4().hex}", result.content or ""))
    return JSONResponse(turn.body("completed", output))
