"""An :class:`MCPHub` for a ``TFrameXApp``'s MCP config (the endpoint gives it to its services)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tframex_asgi.clock import Clock
from tframex_asgi.mcp.capture import config_file_of
from tframex_asgi.mcp.config import load_servers
from tframex_asgi.mcp.hub import MCPHub
from tframex_asgi.mcp.metrics import call_recorder

__all__ = ["hub_for"]


def hub_for(app: Any, clock: Clock, metrics: Callable[[], Any], config_file: str | None = None) -> MCPHub | None:
    """The hub of ``app``'s MCP servers (``config_file`` overrides the app's own), or None when
    none is configured. ``metrics()``: the metrics collector calls are recorded on, if any.

    The file is read now, when the stack is built, so a bad entry fails the build with its path.
    """
    path = config_file or config_file_of(app)
    configs = load_servers(path) if path else ()
    if not configs:
        return None
    return MCPHub(configs, clock=clock, on_call=call_recorder(metrics))
