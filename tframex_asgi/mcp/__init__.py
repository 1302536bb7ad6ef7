"""MCP servers served by the TFrameX endpoint: started in the stack's lifespan, their tools
listed and called like native tools (``<alias>__<tool>``), measured, and isolated (a stdio
server sees only the environment its config names). See docs/mcp.md.

This package stays cheap to import (the metrics layer imports :mod:`.metrics`); the MCP SDK is
imported by :mod:`.connection` and :mod:`.hub` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tframex_asgi.mcp.config import MCPServerConfig, load_servers
    from tframex_asgi.mcp.connection import MCPServer, MCPUnavailable
    from tframex_asgi.mcp.hub import MCPHub

__all__ = ["MCPHub", "MCPServer", "MCPServerConfig", "MCPUnavailable", "load_servers"]

_WHERE = {
    "MCPHub": "hub",
    "MCPServer": "connection",
    "MCPUnavailable": "connection",
    "MCPServerConfig": "config",
    "load_servers": "config",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"tframex_asgi.mcp.{_WHERE[name]}"), name)
    raise AttributeError(name)
