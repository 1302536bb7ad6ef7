"""Route handlers of the TFrameX endpoint (each takes the request and the endpoint)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tframex_asgi.auth.principal import stored_user_id, subject_of
from tframex_asgi.context import get_state
from tframex_asgi.endpoint.conversations import conversation_owner, parse_conversation_id
from tframex_asgi.endpoint.flows import FlowError
from tframex_asgi.endpoint.runner import ToolFailed
from tframex_asgi.endpoint.sse import SSE_HEADERS, EventStream, end_with, is_disconnect, sse
from tframex_asgi.endpoint.turns import capture_turn
from tframex_asgi.errors import (
    AuthorizationError,
    LLMError,
    NotFoundError,
    TFrameXASGIError,
    ToolError,
    ValidationError,
)
from tframex_asgi.events import RunInfo
from tframex_asgi.jsonbody import read_json_object
from tframex_asgi.rbac.resources import rbac_enforced
from tframex_asgi.storage.base import Row
from tframex_asgi.timefmt import json_default

if TYPE_CHECKING:
    from tframex_asgi.endpoint.app import TFrameXEndpoint

logger = logging.getLogger("tframex_asgi.endpoint")


# -- identity helpers -----------------------------------------------------------------------


def principal_ids(request: Request) -> tuple[str | None, str | None]:
    """``(users.id for foreign keys, owner subject for access checks)`` of the caller.

    Token identities (JWT/OAuth2) have no ``users`` row: they own rows through a subject
    namespaced by auth method, so ``jwt:<uuid>`` can never pass for the stored user ``<uuid>``.
    """
    user = request.scope.get("user")
    return stored_user_id(user), subject_of(user)


def user_id(request: Request) -> str | None:
    return principal_ids(request)[0]


def is_admin(request: Request) -> bool:
    return "system.admin" in getattr(request.scope.get("auth"), "scopes", ())


def owner_check(request: Request) -> Callable[[Row], bool]:
    """Own rows only, unless the caller has system.admin."""
    me, admin = principal_ids(request)[1], is_admin(request)
    return lambda row: admin or conversation_owner(row) == me


def caller_permissions(request: Request) -> frozenset[str]:
    """The permissions granted to the caller (``scope["auth"].scopes``; none when anonymous)."""
    return frozenset(getattr(request.scope.get("auth"), "scopes", ()))


def require_data_write(request: Request, ep: TFrameXEndpoint) -> None:
    """Conversation writes need ``data.write`` (when permissions are enforced at all)."""
    if rbac_enforced(ep.services.config) and "data.write" not in caller_permissions(request):
        raise AuthorizationError(
            "missing permission data.write: this route stores the run in a conversation"
            " (POST /v1/chat/completions, and POST /v1/responses with store: false, store nothing)"
        )


def run_info(request: Request, conversation_id: str | None = None) -> RunInfo:
    state = get_state(request.scope)
    info = RunInfo(
        request_id=state.get("request_id"),
        user_id=user_id(request),
        conversation_id=conversation_id,
        permissions=caller_permissions(request),
    )
    # The rate limiter charges token costs from here once the response is over.
    state["usage"] = info.usage
    return info


async def json_body(request: Request) -> dict[str, Any]:
    # The one shared parser (bad JSON, too deep, wrong top-level type: all a 400).
    return await read_json_object(request)


def run_request(body: dict[str, Any]) -> tuple[str, str | None, bool]:
    text = body.get("input")
    if not isinstance(text, str):
        raise ValidationError("'input' is required and must be a string")
    conversation = body.get("conversation_id")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ValidationError("'stream' must be true or false")
    return text, parse_conversation_id(conversation) if conversation is not None else None, stream


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"query parameter {name!r} must be an integer") from None
    if not low <= value <= high:
        raise ValidationError(f"query parameter {name!r} must be between {low} and {high}")
    return value


def usage_json(info: RunInfo) -> dict[str, int]:
    u = info.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "total_tokens": u.total_tokens}


def failure(exc: BaseException) -> TFrameXASGIError:
    """Our error for a failed run (LLM errors keep their code; flows name the failing step)."""
    if isinstance(exc, TFrameXASGIError):
        return exc
    if isinstance(exc, FlowError):
        cause = exc.cause
        if isinstance(cause, TFrameXASGIError):
            return type(cause)(f"flow {exc.flow_name!r} failed at step {exc.step_name!r}: {cause.message}")
        return LLMError(f"flow {exc.flow_name!r} failed at step {exc.step_name!r}", code="flow_failed")
    logger.error("run failed", exc_info=exc)
    return LLMError("the agent run failed", code="run_failed")


# -- health -------------------------------------------------------------------------------------


async def healthz(request: Request, ep: TFrameXEndpoint) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request, ep: TFrameXEndpoint) -> Response:
    try:
        ok = await ep.services.storage.ping()
    except Exception:
        ok = False
    if not ok:
        return JSONResponse({"error": {"code": "not_ready", "message": "storage is not reachable"}}, status_code=503)
    hub = ep.services.mcp
    if hub is None:
        return JSONResponse({"status": "ready"})
    # A configured MCP server that is down makes the instance not ready: its tools answer 503.
    health = hub.health()
    down = sorted(alias for alias, h in health.items() if h["state"] != "up")
    if down:
        message = "MCP server(s) not connected: " + ", ".join(down)
        return JSONResponse({"error": {"code": "not_ready", "message": message}, "mcp": health}, status_code=503)
    return JSONResponse({"status": "ready", "mcp": health})


# -- catalogue ----------------------------------------------------------------------------------


async def list_agents(request: Request, ep: TFrameXEndpoint) -> Response:
    return JSONResponse({"agents": ep.runner.agents()})


async def list_tools(request: Request, ep: TFrameXEndpoint) -> Response:
    return JSONResponse({"tools": ep.runner.tools()})


async def list_flows(request: Request, ep: TFrameXEndpoint) -> Response:
    return JSONResponse({"flows": ep.runner.flows()})


# -- runs ---------------------------------------------------------------------------------------


async def run_agent(request: Request, ep: TFrameXEndpoint) -> Response:
    name = request.path_params["name"]
    ep.runner.check_agent(name, RunInfo(permissions=caller_permissions(request)))
    text, conversation_id, stream = run_request(await json_body(request))
    require_data_write(request, ep)  # before the conversation is opened or created
    conversations = ep.conversations
    uid, owner = principal_ids(request)
    conversation_id = await conversations.open(conversation_id, uid, owner, name, text[:80], owner_check(request))
    history = await conversations.history(conversation_id, ep.services.config.server.history_limit)
    info = run_info(request, conversation_id)
    if stream:
        return EventStream(_stream_run(ep, name, text, info, history), SSE_HEADERS)  # type: ignore[return-value]
    try:
        with capture_turn() as turn:
            result = await ep.runner.run_agent(name, text, info, history)
    except Exception as exc:
        raise failure(exc) from exc
    # The whole turn: tool calls and their results too, not only the question and the answer.
    await conversations.append(conversation_id, turn.messages_or([("user", text), ("assistant", result.content)]))
    return JSONResponse(
        {"agent": name, "output": result.content, "conversation_id": conversation_id, "usage": usage_json(info)}
    )


async def _stream_run(
    ep: TFrameXEndpoint, name: str, text: str, info: RunInfo, history: list[Any]
) -> AsyncIterator[bytes]:
    parts: list[str] = []
    assert info.conversation_id is not None
    saving = False
    chunks = ep.runner.stream_agent(name, text, info, history)
    try:
        with capture_turn() as turn:
            async for chunk in chunks:
                if chunk.content:
                    parts.append(chunk.content)
                    yield sse({"content": chunk.content}, "chunk")
                elif chunk.tool_calls:
                    yield sse({"tool_calls": [c.function.name for c in chunk.tool_calls]}, "tool_call")
        output = "".join(parts)
        saving = True
        # The whole turn: tool calls and their results too, not only the question and the answer.
        await ep.conversations.append(info.conversation_id, turn.messages_or([("user", text), ("assistant", output)]))
        yield sse({"output": output, "conversation_id": info.conversation_id, "usage": usage_json(info)}, "done")
    except asyncio.CancelledError as exc:
        await end_with(chunks, exc)  # cancelled at our yield: the run ends with the same cause
        if is_disconnect(exc) and not saving:
            # The client left mid-stream: keep the turn as far as it went (the run record says
            # cancelled), so the conversation shows what the client was sent.
            try:
                await ep.conversations.append(info.conversation_id, [("user", text), ("assistant", "".join(parts))])
            except Exception:
                logger.warning("conversation %s: the cancelled turn could not be stored", info.conversation_id)
        raise
    except Exception as exc:
        err = failure(exc)
        yield sse({"error": {"code": err.code, "message": err.message}}, "error")


async def run_flow(request: Request, ep: TFrameXEndpoint) -> Response:
    name = request.path_params["name"]
    text, _, stream = run_request(await json_body(request))
    if stream:
        raise ValidationError("flows do not stream; send 'stream': false")
    info = run_info(request)
    try:
        execution_id, ctx = await ep.runner.run_flow(name, text, info)
    except NotFoundError:
        raise
    except Exception as exc:
        raise failure(exc) from exc
    return JSONResponse(
        {
            "flow": name,
            "execution_id": execution_id,
            "output": ctx.current_message.content,
            "steps": len(ctx.history) - 1,
            "usage": usage_json(info),
        }
    )


async def call_tool(request: Request, ep: TFrameXEndpoint) -> Response:
    name = request.path_params["name"]
    body = await json_body(request)
    arguments = body.get("arguments", {})
    if not isinstance(arguments, dict):
        raise ValidationError("'arguments' must be a JSON object")
    try:
        result = await ep.runner.call_tool(name, arguments, run_info(request))
    except ToolFailed as exc:
        raise ToolError(str(exc)) from exc
    try:  # as JSONResponse encodes, but a result JSON cannot carry (inf, NaN, an object) is the tool's failure
        content = json.dumps(
            {"tool": name, "result": result}, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()
    except (TypeError, ValueError) as exc:
        raise ToolError(f"tool {name!r} returned a result that is not JSON ({exc})") from exc
    return Response(content, media_type="application/json")


# -- conversations ------------------------------------------------------------------------------


_CONVERSATION_PARAMS = frozenset({"limit", "offset", "all"})


async def list_conversations(request: Request, ep: TFrameXEndpoint) -> Response:
    unknown = set(request.query_params) - _CONVERSATION_PARAMS
    if unknown:  # a misspelt filter would otherwise list everything, unfiltered (as GET /audit refuses it)
        raise ValidationError(f"unknown query parameter {sorted(unknown)[0]!r} (limit, offset, all)")
    limit = int_param(request, "limit", 50, 1, 500)
    offset = int_param(request, "offset", 0, 0, 10_000_000)
    everyone = is_admin(request) and request.query_params.get("all") == "true"
    uid, owner = principal_ids(request)
    rows = await ep.conversations.list_for(None if everyone else (uid, owner), limit, offset)
    return JSONResponse({"conversations": rows, "limit": limit, "offset": offset})


async def _owned(request: Request, ep: TFrameXEndpoint) -> Row:
    """The conversation named in the path, if the caller may see it (else it looks missing)."""
    row = await ep.conversations.get(parse_conversation_id(request.path_params["id"]))
    if row is None or not owner_check(request)(row):
        raise NotFoundError("no such conversation")
    return row


async def get_conversation(request: Request, ep: TFrameXEndpoint) -> Response:
    row = await _owned(request, ep)
    messages = await ep.conversations.messages(str(row["id"]))
    return JSONResponse({"conversation": json.loads(json.dumps(row, default=json_default)), "messages": messages})


async def delete_conversation(request: Request, ep: TFrameXEndpoint) -> Response:
    row = await _owned(request, ep)
    await ep.conversations.delete(str(row["id"]))
    return Response(status_code=204)
