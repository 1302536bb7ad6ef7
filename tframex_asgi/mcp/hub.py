"""All MCP servers of one endpoint: started and stopped by the stack's lifespan, listed and
called like native tools under the name ``<alias>__<tool>``.

The hub is what the endpoint hands tframex as the runtime context's ``mcp_manager``: it has the
part of tframex's ``MCPManager`` interface that ``LLMAgent`` and the MCP meta-tools use
(``servers``, ``get_server``, ``get_all_mcp_tools_for_llm``, ``call_mcp_tool_by_prefixed_name``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from mcp.types import CallToolResult, EmbeddedResource, ImageContent, TextContent, Tool
from tframex.models.primitives import ToolDefinition

from tframex_asgi.clock import Clock, SystemClock
from tframex_asgi.mcp.config import MCPServerConfig
from tframex_asgi.mcp.connection import MCPServer, MCPUnavailable
from tframex_asgi.metrics.spec import OTHER

__all__ = ["SEPARATOR", "MCPHub", "Unavailable"]

logger = logging.getLogger("tframex_asgi.mcp")
SEPARATOR = "__"
# (server, tool, status, seconds) after every call; status: success, error, unavailable, timeout.
CallSink = Callable[[str, str, str, float], None]


class Unavailable(dict[str, Any]):
    """The ``{"error": ...}`` a tool call returns when its server is down or timed out.

    An agent's LLM reads it as any failed tool; ``POST /tools/{name}/call`` tells it from a
    failing tool by its type and answers 503 instead of 422.
    """

    def __init__(self, exc: MCPUnavailable) -> None:
        super().__init__(error=exc.message)
        self.code = exc.code


def _text(name: str, result: CallToolResult) -> str:
    parts = []
    for item in result.content:
        if isinstance(item, TextContent):
            parts.append(item.text)
        elif isinstance(item, ImageContent):
            parts.append(f"[image from MCP tool {name!r}, {item.mimeType}]")
        elif isinstance(item, EmbeddedResource):
            parts.append(f"[resource from MCP tool {name!r}: {item.resource.uri}]")
    return "\n".join(parts)


def _description(alias: str, tool: Tool) -> str:
    return tool.description or f"Tool {tool.name!r} of MCP server {alias!r}"


def _schema(tool: Tool) -> dict[str, Any]:
    return tool.inputSchema or {"type": "object", "properties": {}}


class MCPHub:
    def __init__(
        self, configs: Sequence[MCPServerConfig], *, clock: Clock | None = None, on_call: CallSink | None = None
    ) -> None:
        self.servers: dict[str, MCPServer] = {c.alias: MCPServer(c) for c in configs}
        self.clock = clock or SystemClock()
        self.on_call = on_call

    # -- lifespan -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every server and wait for each first attempt (bounded by its init timeout).

        A server that fails to start does not fail the startup: it is reported by /readyz and
        retried in the background, and the rest of the app serves meanwhile.
        """
        for server in self.servers.values():
            await server.start()
        await asyncio.gather(*(s.wait_settled(s.config.init_step_timeout + 1.0) for s in self.servers.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.servers.values()))

    # -- catalogue ------------------------------------------------------------------------

    def split(self, name: str) -> tuple[MCPServer, str] | None:
        alias, sep, tool = name.partition(SEPARATOR)
        server = self.servers.get(alias) if sep and tool else None
        return (server, tool) if server is not None else None

    def knows(self, name: str) -> bool:
        """True for a tool of a connected server, and for any ``alias__tool`` of a server that is
        down (its tool list may have changed; calling it answers 503, not 404)."""
        found = self.split(name)
        if found is None:
            return False
        server, tool = found
        return not server.is_initialized or any(t.name == tool for t in server.tools)

    def tools(self) -> list[dict[str, Any]]:
        """``GET /tools`` entries, in the shape of native tools plus ``type``/``server``/``available``."""
        return [
            {
                "name": f"{alias}{SEPARATOR}{t.name}",
                "description": _description(alias, t),
                "parameters": _schema(t),
                "type": "mcp",
                "server": alias,
                "available": server.is_initialized,
            }
            for alias, server in self.servers.items()
            for t in server.tools
        ]

    def tool_names_for(self, setting: Any) -> list[str]:
        """The MCP tools an agent can use: its ``mcp_tools_from_servers`` (``"ALL"`` or aliases)."""
        aliases = list(self.servers) if setting == "ALL" else list(setting) if isinstance(setting, list) else []
        known = [self.servers[alias] for alias in aliases if alias in self.servers]
        return [f"{s.server_alias}{SEPARATOR}{t.name}" for s in known for t in s.tools]

    def health(self) -> dict[str, dict[str, Any]]:
        """Per-server state for /readyz, which is public: no error text (that goes to the log)."""
        return {
            alias: {"state": s.state, "tools": len(s.tools), "reconnects": s.reconnects}
            for alias, s in self.servers.items()
        }

    # -- calls ----------------------------------------------------------------------------

    async def call_tool(self, name: str, arguments: Any) -> Any:
        """The tool's text, ``{"error": ...}`` when the tool failed, or :class:`Unavailable`."""
        found = self.split(name)
        if found is None:
            return {"error": f"no MCP tool named {name!r}"}
        server, tool = found
        if not isinstance(arguments, dict):
            return {"error": f"the arguments of MCP tool {name!r} must be a JSON object"}
        started = self.clock.monotonic()
        try:
            result = await server.call_tool(tool, arguments)
        except MCPUnavailable as exc:
            self._record(server, tool, "timeout" if exc.code == "mcp_timeout" else "unavailable", started)
            return Unavailable(exc)
        except Exception as exc:  # a protocol error the server sent (unknown tool, bad params)
            self._record(server, tool, "error", started)
            return {"error": f"MCP tool {name!r} failed: {exc}"}
        if result.isError:
            self._record(server, tool, "error", started)
            return {"error": f"MCP tool {name!r} failed: {_text(name, result) or 'no detail'}"}
        self._record(server, tool, "success", started)
        return _text(name, result)

    def _record(self, server: MCPServer, tool: str, status: str, started: float) -> None:
        if self.on_call is not None:
            # Tool names come from the request path: only listed ones become metric labels.
            label = tool if any(t.name == tool for t in server.tools) else OTHER
            self.on_call(server.server_alias, label, status, self.clock.monotonic() - started)

    # -- tframex's MCPManager interface ---------------------------------------------------

    def get_server(self, alias: str) -> MCPServer | None:
        server = self.servers.get(alias)
        return server if server is not None and server.is_initialized else None

    def get_all_mcp_tools_for_llm(self) -> list[ToolDefinition]:
        return [
            ToolDefinition(
                type="function",
                function={
                    "name": f"{alias}{SEPARATOR}{t.name}",
                    "description": _description(alias, t),
                    "parameters": _schema(t),
                },
            )
            for alias, s in self.servers.items()
            if s.is_initialized
            for t in s.tools
        ]

    async def call_mcp_tool_by_prefixed_name(self, name: str, arguments: dict[str, Any]) -> Any:
        found = self.split(name)
        if found is None:
            return {"error": f"no MCP tool named {name!r}"}
        try:
            return await found[0].call_tool(found[1], arguments)
        except Exception as exc:
            return {"error": str(exc)}
