"""A small FastMCP server for the tests: stdio by default, streamable HTTP with ``--http PORT``.

Tools: ``add`` (works), ``fail`` (raises: a failing tool), ``env`` (reads one environment
variable: the isolation test), ``crash`` (the process dies mid-call), ``sleep`` (outlives a
short call timeout); one resource and one prompt for tframex's MCP meta-tools.
"""

from __future__ import annotations

import os
import sys
import time

from mcp.server.fastmcp import FastMCP

server = FastMCP("tframex-asgi-test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def fail(message: str) -> str:
    """Always fails with the given message."""
    raise ValueError(message)


@server.tool()
def env(name: str) -> str:
    """The value of one environment variable of this server process, or <unset>."""
    return os.environ.get(name, "<unset>")


@server.tool()
def crash() -> str:
    """The server process exits at once (a crashing server)."""
    os._exit(3)


@server.tool()
def sleep(seconds: float) -> str:
    """Sleeps (blocking the server) and answers."""
    time.sleep(seconds)
    return "awake"


@server.resource("notes://greeting")
def greeting() -> str:
    """A fixed note."""
    return "hello from a resource"


@server.prompt()
def review(code: str) -> str:
    """Ask for a review of some code."""
    return f"Please review: {code}"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.settings.host = "127.0.0.1"
        server.settings.port = int(sys.argv[2])
        server.settings.log_level = "WARNING"
        server.run(transport="streamable-http")
    else:
        server.run()
