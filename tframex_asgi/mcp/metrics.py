"""MCP server metrics: connection state and reconnects (observed), call latency and outcomes.

The hub is built when the endpoint is bound, before the metrics collector exists, so both
sides get a getter for the other and call it when they record or collect (as the write queue's
metrics do): with metrics off nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tframex_asgi.metrics.backend import Callback, Sample

__all__ = ["call_recorder", "mcp_callbacks"]


def mcp_callbacks(current: Callable[[], Any]) -> dict[str, Callback]:
    """Connection state and reconnects of the hub ``current()`` returns (None when there is none)."""

    def up() -> Iterable[Sample]:
        hub = current()
        return [((alias,), 1.0 if s.is_initialized else 0.0) for alias, s in hub.servers.items()] if hub else []

    def reconnects() -> Iterable[Sample]:
        hub = current()
        return [((alias,), float(s.reconnects)) for alias, s in hub.servers.items()] if hub else []

    return {"mcp_server_up": up, "mcp_reconnects_total": reconnects}


def call_recorder(current: Callable[[], Any]) -> Any:
    """The hub's ``on_call``: one counter and one histogram update per MCP tool call on the
    collector ``current()`` returns (None with metrics off)."""

    def record(server: str, tool: str, status: str, seconds: float) -> None:
        collector = current()
        if collector is not None:
            collector.child("mcp_tool_calls_total", (server, tool, status)).inc()
            collector.child("mcp_tool_duration_seconds", (server, tool)).observe(seconds)

    return record
