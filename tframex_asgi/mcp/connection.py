"""One MCP server: a long-lived supervisor task that connects, serves calls and reconnects.

The transport and the ``ClientSession`` are anyio contexts whose cancel scopes must be entered
and exited by the same task. tframex 1.1.0 enters them in the startup task and exits them in
the shutdown task (``RuntimeError: Attempted to exit cancel scope in a different task``); here
one task per server owns both for the whole life of a connection, and calls from request tasks
only send messages over the session's streams.

A connection is lost when the server's output ends (the session's receive loop returns), when a
ping goes unanswered, or when a call finds the streams closed. The supervisor then reconnects
with exponential backoff (0.5 s doubling to 30 s) until it is stopped; meanwhile the server's
tools answer "unavailable" at once instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any, Literal

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.shared.exceptions import McpError
from mcp.types import CONNECTION_CLOSED, CallToolResult, TextResourceContents, Tool
from pydantic import AnyUrl

from tframex_asgi.errors import ServiceUnavailableError
from tframex_asgi.mcp.config import MCPServerConfig
from tframex_asgi.mcp.env import server_environment
from tframex_asgi.mcp.redact import install_log_filter, redact
from tframex_asgi.util import cancel_and_wait

__all__ = ["MCPServer", "MCPUnavailable"]

logger = logging.getLogger("tframex_asgi.mcp")
State = Literal["starting", "up", "down", "stopped"]
_FIRST_DELAY, _MAX_DELAY = 0.5, 30.0
_GONE = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)


class MCPUnavailable(ServiceUnavailableError):
    """The server is not connected, or did not answer within its ``tool_call_timeout`` (503)."""

    code = "mcp_unavailable"


class _WatchedSession(ClientSession):
    """A session that tells its owner when the server's side of the stream has ended."""

    def __init__(self, *args: Any, on_closed: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_closed = on_closed

    async def _receive_loop(self) -> None:
        try:
            await super()._receive_loop()
        finally:
            # Cancelled (the supervisor tears the session down), the SDK's own cleanup cannot await
            # its error replies: closing the waiters' streams (no await) still ends their calls now.
            for stream in list(self._response_streams.values()):
                stream.close()
            self._on_closed()


install_log_filter()


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return redact(f"{type(exc).__name__}: {exc}")[:300]


class MCPServer:
    """A configured server. Also shaped like tframex's ``MCPConnectedServer`` (``server_alias``,
    ``is_initialized``, ``tools``, ``resources``, ``prompts``, ``server_info``, ``capabilities``)
    so tframex's agents and MCP meta-tools can read it."""

    def __init__(self, config: MCPServerConfig) -> None:
        self.config = config
        self.server_alias = config.alias
        self.state: State = "starting"
        self.tools: list[Tool] = []  # kept from the last connection while down, for GET /tools
        self.resources: list[Any] = []
        self.prompts: list[Any] = []
        self.server_info: Any = None
        self.capabilities: Any = None
        self.last_error: str | None = None
        self.connects = 0
        self.reconnects = 0
        self._session: ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()  # the first connection attempt is over (either way)

    @property
    def is_initialized(self) -> bool:
        return self.state == "up"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            # Fresh events: they belong to the loop that runs this startup.
            self._stopping, self._wake, self._settled = False, asyncio.Event(), asyncio.Event()
            self._task = asyncio.create_task(self._supervise(), name=f"mcp-server:{self.server_alias}")

    async def wait_settled(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._settled.wait()

    async def stop(self, grace: float = 10.0) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            # Cancelled inside its own task, so its scopes still exit where they were entered.
            await cancel_and_wait(task)
        elif not task.cancelled() and task.exception() is not None:
            logger.error("MCP server %r: supervisor failed", self.server_alias, exc_info=task.exception())
        self.state = "stopped"

    # -- calls ----------------------------------------------------------------------------

    def _live(self) -> ClientSession:
        session = self._session
        if session is None or self.state != "up":
            raise MCPUnavailable(f"MCP server {self.server_alias!r} is {self.state}")
        return session

    async def read_mcp_resource(self, uri: str) -> Any:
        """For tframex's ``tframex_read_mcp_resource`` meta-tool: the text, when the resource is text
        (the meta-tool only understands a string, not the SDK's ``ReadResourceResult``)."""
        with anyio.fail_after(self.config.tool_call_timeout):
            result = await self._live().read_resource(AnyUrl(uri))
        texts = [c.text for c in result.contents if isinstance(c, TextResourceContents)]
        return "\n".join(texts) if len(texts) == len(result.contents) else result

    async def get_mcp_prompt(self, name: str, arguments: dict[str, Any]) -> Any:
        """For tframex's ``tframex_use_mcp_prompt`` meta-tool."""
        with anyio.fail_after(self.config.tool_call_timeout):
            return await self._live().get_prompt(name, {k: str(v) for k, v in (arguments or {}).items()})

    async def call_tool(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        session = self._live()
        limit = self.config.tool_call_timeout
        try:
            with anyio.fail_after(limit):
                return await session.call_tool(tool, arguments, read_timeout_seconds=timedelta(seconds=limit))
        except TimeoutError:
            raise MCPUnavailable(
                f"MCP server {self.server_alias!r} did not answer {tool!r} within {limit:g} s", code="mcp_timeout"
            ) from None
        except McpError as exc:
            if exc.error.code == CONNECTION_CLOSED:
                self._lost("the connection closed during a call")
                raise MCPUnavailable(f"MCP server {self.server_alias!r} went away during the call") from exc
            if exc.error.code == 408:  # the SDK's read timeout
                raise MCPUnavailable(
                    f"MCP server {self.server_alias!r} did not answer {tool!r} within {limit:g} s", code="mcp_timeout"
                ) from exc
            raise
        except _GONE as exc:
            self._lost("the connection closed during a call")
            raise MCPUnavailable(f"MCP server {self.server_alias!r} went away during the call") from exc

    def _lost(self, why: str) -> None:
        if self.state == "up":
            # Down at once: calls answer 503 from now on, while the supervisor reconnects.
            self.state, self.last_error = "down", why
        self._wake.set()

    # -- the supervisor task --------------------------------------------------------------

    async def _supervise(self) -> None:
        delay = _FIRST_DELAY
        while not self._stopping:
            try:
                await self._connect_and_serve()
                if not self._stopping:
                    logger.warning("MCP server %r: connection lost (%s)", self.server_alias, self.last_error)
            except Exception as exc:
                self.last_error = _describe(exc)
                logger.warning("MCP server %r is unavailable: %s", self.server_alias, self.last_error)
            finally:
                if self._session is not None:
                    delay = _FIRST_DELAY  # it was connected: retry quickly
                self._session = None
                self.state = "stopped" if self._stopping else "down"
                self._settled.set()
            if self._stopping:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            delay = min(delay * 2, _MAX_DELAY)
            if not self._stopping:
                self.reconnects += 1

    @asynccontextmanager
    async def _transport(self) -> AsyncIterator[tuple[Any, Any]]:
        cfg = self.config
        if cfg.type == "stdio":
            from mcp.client.stdio import stdio_client

            assert cfg.command is not None
            params = StdioServerParameters(
                command=cfg.command, args=list(cfg.args), env=server_environment(cfg.env), cwd=cfg.cwd
            )
            async with stdio_client(params) as (read, write):
                yield read, write
        elif cfg.type == "streamable-http":
            import httpx
            from mcp.client import streamable_http

            assert cfg.url is not None
            # The SDK's own timeouts (30 s, 5 min between stream events); our bound is tool_call_timeout.
            modern = getattr(streamable_http, "streamable_http_client", None)
            if modern is None:  # older mcp 1.x releases only have the older (now deprecated) spelling
                async with streamable_http.streamablehttp_client(cfg.url, headers=dict(cfg.headers)) as (r, w, _):
                    yield r, w
                return
            http = httpx.AsyncClient(headers=dict(cfg.headers), timeout=httpx.Timeout(30.0, read=300.0))
            async with http, modern(cfg.url, http_client=http) as (read, write, _):
                yield read, write
        else:
            from mcp.client.sse import sse_client

            assert cfg.url is not None
            async with sse_client(cfg.url, headers=dict(cfg.headers) or None) as (read, write):
                yield read, write

    async def _connect_and_serve(self) -> None:
        cfg = self.config
        self._wake.clear()
        async with AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(self._transport())
            session = await stack.enter_async_context(
                _WatchedSession(read, write, on_closed=lambda: self._lost("the server closed the connection"))
            )
            with anyio.fail_after(cfg.init_step_timeout):
                init = await session.initialize()
                caps = init.capabilities
                listed = await session.list_tools() if caps.tools else None
                resources = await session.list_resources() if caps.resources else None
                prompts = await session.list_prompts() if caps.prompts else None
            self.tools = list(listed.tools) if listed is not None else []
            self.resources = list(resources.resources) if resources is not None else []
            self.prompts = list(prompts.prompts) if prompts is not None else []
            self.server_info, self.capabilities = init.serverInfo, init.capabilities
            self._session, self.state, self.last_error = session, "up", None
            self.connects += 1
            self._settled.set()
            logger.info("MCP server %r connected: %d tools", self.server_alias, len(self.tools))
            await self._watch(session)

    async def _watch(self, session: ClientSession) -> None:
        """Return when the connection is lost or the server is stopping (pinging while idle)."""
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.ping_interval):
                    await self._wake.wait()
            if self._stopping or self._wake.is_set():
                return
            try:
                with anyio.fail_after(self.config.init_step_timeout):
                    await session.send_ping()
            except Exception as exc:
                self.last_error = f"ping failed: {_describe(exc)}"
                return
