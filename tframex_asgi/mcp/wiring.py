"""Give an endpoint's services an :class:`MCPHub` for its app's MCP config, run by lifespan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tframex_asgi.mcp.capture import config_file_of
from tframex_asgi.mcp.config import load_servers
from tframex_asgi.mcp.metrics import call_recorder

if TYPE_CHECKING:
    from tframex_asgi.mcp.hub import MCPHub
    from tframex_asgi.services import Services

__all__ = ["attach_mcp"]


def attach_mcp(app: Any, services: Services, config_file: str | None = None) -> MCPHub | None:
    """The hub in ``services.extras["mcp"]`` (created once), or None when no server is configured.

    The file is read now, when the stack is built, so a bad entry fails the build with its path.
    """
    existing: MCPHub | None = services.extras.get("mcp")
    if existing is not None:
        return existing
    path = config_file or config_file_of(app)
    configs = load_servers(path) if path else ()
    if not configs:
        return None
    from tframex_asgi.mcp.hub import MCPHub

    hub = MCPHub(configs, clock=services.clock, on_call=call_recorder(services.extras))
    services.extras["mcp"] = hub
    services.on_startup(hub.start)
    services.on_shutdown(hub.stop)
    return hub
