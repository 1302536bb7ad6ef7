"""Keep the ``mcp_config_file`` of a ``TFrameXApp`` built outside an event loop.

tframex 1.1.0's ``MCPManager.__init__`` starts asyncio tasks, so a module-level
``TFrameXApp(mcp_config_file=...)`` logs ``Failed to initialize MCPManager ...: no running event
loop``, keeps ``_mcp_manager = None`` and forgets the file. :func:`install` (run when the endpoint
is imported) makes ``TFrameXApp`` build a :class:`DeferredMCPManager` instead: it records the
arguments and builds tframex's real manager only when plain-tframex code first uses it (inside a
loop by then), so apps that run without tframex-asgi behave as with plain tframex. The endpoint itself reads
only ``config_file_path`` and runs the servers through :class:`~tframex_asgi.mcp.hub.MCPHub`.
"""

from __future__ import annotations

import os
from typing import Any

from tframex_asgi.mcp.config import DEFAULT_CONFIG_FILE

__all__ = ["DeferredMCPManager", "config_file_of", "install"]

_UPSTREAM: Any = None


class DeferredMCPManager:
    def __init__(self, mcp_config_file_path: str | None = "servers_config.json", **options: Any) -> None:
        self.config_file_path = mcp_config_file_path
        self._options = options
        self._real: Any = None
        # tframex passes its default name to every app; absent, it means "no MCP". Falsy then, so
        # TFrameXApp registers no MCP meta-tools for an app without MCP servers.
        self._configured = bool(mcp_config_file_path) and (
            mcp_config_file_path != DEFAULT_CONFIG_FILE or os.path.exists(mcp_config_file_path)
        )

    def __bool__(self) -> bool:
        return self._configured

    def __getattr__(self, name: str) -> Any:
        # Only reached for what this stand-in lacks: the real manager's attributes and methods.
        if name.startswith("__") or name in ("_real", "_options", "_configured"):
            raise AttributeError(name)
        if self._real is None:
            self._real = _UPSTREAM(mcp_config_file_path=self.config_file_path, **self._options)
        return getattr(self._real, name)


def install() -> None:
    """Idempotent: replace ``tframex.app.MCPManager`` with :class:`DeferredMCPManager`."""
    global _UPSTREAM
    import tframex.app as tframex_app

    if tframex_app.MCPManager is not DeferredMCPManager:
        _UPSTREAM = tframex_app.MCPManager
        tframex_app.MCPManager = DeferredMCPManager


def config_file_of(app: Any) -> str | None:
    """The MCP config file a ``TFrameXApp`` was built with (None: MCP off, or the app was built
    before tframex-asgi was imported and tframex dropped it)."""
    manager = getattr(app, "_mcp_manager", None)
    path = getattr(manager, "config_file_path", None) if manager is not None else None
    return str(path) if path else None
