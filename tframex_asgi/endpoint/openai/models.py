"""``GET /v1/models`` and ``GET /v1/models/{id}``: the agents, as OpenAI models.

The route needs ``agent.execute`` (what running a model needs), and an agent the resource guard
(``rbac.resources``) keeps from the caller is neither listed nor found: every model listed is one
the caller may run. Flows are not models: they take one input and keep no conversation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tframex_asgi.endpoint.handlers import caller_permissions
from tframex_asgi.endpoint.openai.errors import ModelNotFound, ParamError
from tframex_asgi.events import RunInfo

if TYPE_CHECKING:
    from tframex_asgi.endpoint.app import TFrameXEndpoint

__all__ = ["check_model", "get_model", "list_models"]


def _created(ep: TFrameXEndpoint) -> int:
    # OpenAI's "created" is when a model appeared; ours appear when the endpoint first serves.
    if ep.models_created is None:
        ep.models_created = int(ep.services.clock.time())
    return ep.models_created


def _model(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "tframex"}


def check_model(ep: TFrameXEndpoint, model: Any) -> tuple[str, ...]:
    """404 ``model_not_found`` unless ``model`` names an agent; returns the tool names the agent
    already uses (client tools must not reuse them)."""
    if not isinstance(model, str) or not model:
        raise ParamError("model", "'model' (the agent name) is required")
    reg = ep.tframex._agents.get(model)
    if reg is None:
        raise ModelNotFound(model)
    cfg = reg["config"]
    return (*(cfg.get("native_tool_names") or ()), *(cfg.get("callable_agent_names") or ()))


async def list_models(request: Request, ep: TFrameXEndpoint) -> Response:
    created, caller = _created(ep), RunInfo(permissions=caller_permissions(request))
    runnable = [name for name in ep.tframex._agents if ep.runner.allows("agent", name, caller)]
    return JSONResponse({"object": "list", "data": [_model(name, created) for name in runnable]})


async def get_model(request: Request, ep: TFrameXEndpoint) -> Response:
    name = request.path_params["id"]
    check_model(ep, name)
    # A model the caller may not run looks exactly like a missing one.
    if not ep.runner.allows("agent", name, RunInfo(permissions=caller_permissions(request))):
        raise ModelNotFound(name)
    return JSONResponse(_model(name, _created(ep)))
