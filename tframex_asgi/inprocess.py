"""In-process runs (``async with app.run_context() as ctx: await ctx.call_agent(...)``) treated
like HTTP runs: authorised for the principal handed in, measured, recorded and audited.

Nothing here is a second copy of the HTTP path: the context's engine is the endpoint's
:class:`~tframex_asgi.endpoint.engine.InstrumentedEngine` emitting on the stack's event bus (so
the metrics collector and the persistence recorder see the run), the permission comes from the
authorization layer's own route table (``POST /agents/{name}/run`` -> ``agent.execute``, with the
operator's ``rbac.routes`` overrides), and the audit row is the one the audit layer writes for
that request, built by the same :class:`~tframex_asgi.audit.AuditLogger`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from starlette.authentication import UnauthenticatedUser
from tframex import Flow, FlowContext, Message, MessageChunk, TFrameXRuntimeContext

from tframex_asgi.catalog.routes import PUBLIC
from tframex_asgi.endpoint.conversations import (
    ConversationStore,
    conversation_cache,
    conversation_owner,
    parse_conversation_id,
)
from tframex_asgi.endpoint.engine import InstrumentedEngine
from tframex_asgi.endpoint.flows import FlowError, run_flow
from tframex_asgi.endpoint.runctx import current_run, run_vars
from tframex_asgi.endpoint.turns import capture_turn
from tframex_asgi.errors import (
    AuthenticationError,
    AuthorizationError,
    NotFoundError,
    TFrameXASGIError,
    ValidationError,
)
from tframex_asgi.events import RunInfo
from tframex_asgi.rbac.resource import CallerGuard

if TYPE_CHECKING:
    from tframex_asgi.app import EnterpriseTFrameXApp

__all__ = ["EnterpriseRuntimeContext"]

T = TypeVar("T")
# RunInfo carries the caller's permissions for the engine's resource guard in versions that have one.
_RUNINFO_PERMISSIONS = "permissions" in {f.name for f in fields(RunInfo)}
USER_AGENT = b"tframex-asgi in-process"


def _status(exc: BaseException | None) -> tuple[int, str | None]:
    if exc is None:
        return 200, None
    if isinstance(exc, FlowError) and isinstance(exc.cause, TFrameXASGIError):
        exc = exc.cause
    if isinstance(exc, AuthenticationError):
        return 401, "missing_credentials"
    if isinstance(exc, AuthorizationError):
        return 403, "forbidden"
    if isinstance(exc, TFrameXASGIError):
        return exc.status, None
    return 500, None


class EnterpriseRuntimeContext(TFrameXRuntimeContext):  # type: ignore[misc]
    """What :meth:`EnterpriseTFrameXApp.run_context` returns; tframex's context API, unchanged."""

    def __init__(
        self,
        app: EnterpriseTFrameXApp,
        llm: Any,
        *,
        principal: Any = None,
        conversation_id: str | None = None,
        record_conversation: bool = False,
    ) -> None:
        super().__init__(app, llm=llm, mcp_manager=app._mcp_manager)
        self._enterprise = app
        self.principal = principal
        # Recorded in conversations/messages like POST /agents/{name}/run with conversation_id.
        self.record_conversation = record_conversation or conversation_id is not None
        self.conversation_id = parse_conversation_id(conversation_id) if conversation_id is not None else None
        self._conversation_agent: str | None = None
        services = app.services
        # The endpoint runner's own collaborators (the per-resource guard, MCP), where this
        # version's runner has them: in-process runs get exactly the HTTP runs' checks.
        runner = app.endpoint.runner
        extra = {k: getattr(runner, k) for k in ("guard", "mcp") if getattr(runner, k, None) is not None}
        self.engine = InstrumentedEngine(
            app,
            self,
            events=services.events,
            clock=services.clock,
            history_limit=services.config.server.history_limit,
            **extra,
        )

    async def __aenter__(self) -> EnterpriseRuntimeContext:
        await self._enterprise.acquire()
        try:
            await super().__aenter__()
        except BaseException:
            await self._enterprise.release()
            raise
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        try:
            # tframex closes the context's LLM client; the app's default LLM is shared with the
            # HTTP endpoint and with other contexts, so only an override is closed.
            if self.llm is not self._enterprise.default_llm:
                await super().__aexit__(exc_type, exc_val, exc_tb)
        finally:
            await self._enterprise.release()  # the last one out flushes the write queues

    # -- the request-shaped envelope -------------------------------------------------------

    def _rule(self, method: str, path: str) -> tuple[str | None, str | None]:
        """``(route template, permission)`` from the authorization layer's table."""
        table = self._enterprise.route_table
        found = table.match(method, path) if table is not None else None
        return found if found is not None else (None, None)

    def _authorize(self, permission: str | None) -> None:
        """Refuse as the authentication and authorization layers refuse the same request."""
        security = self._enterprise.enterprise_config.security
        if not security.enabled or permission == PUBLIC:
            return
        principal = self.principal
        if principal is None or not getattr(principal, "is_authenticated", False):
            raise AuthenticationError("authentication required: pass principal= to run_context()")
        if self._enterprise.route_table is None:  # rbac off: authenticated is enough, as over HTTP
            return
        if permission is None:
            raise AuthorizationError("no permission grants this route")
        if permission not in getattr(principal, "permissions", ()):
            raise AuthorizationError(f"missing permission {permission}")

    def _info(self) -> RunInfo:
        principal = self.principal
        uid = None
        if principal is not None and not getattr(principal, "external", False):
            uid = getattr(principal, "id", None)
        info = RunInfo(request_id=f"inproc-{uuid.uuid4().hex}", user_id=uid)
        if _RUNINFO_PERMISSIONS and principal is not None:
            # What the engine's resource guard checks, as for an HTTP caller.
            granted: dict[str, Any] = {"permissions": frozenset(getattr(principal, "permissions", ()))}
            info = replace(info, **granted)
        return info

    def _audit(self, info: RunInfo, path: str, route: str | None, exc: BaseException | None, ms: int) -> None:
        audit = self._enterprise.audit
        if audit is None:
            return
        status, reason = _status(exc)
        principal = self.principal
        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"user-agent", USER_AGENT)],
            "client": None,
            "user": principal if principal is not None else UnauthenticatedUser(),
            "tframex": {"request_id": info.request_id, "principal": principal},
        }
        audit.log_request(scope, status=status, duration_ms=ms, reason=reason, route=route or path, path=path)

    async def _envelope(self, path: str, run: Callable[[], Awaitable[T]]) -> T:
        clock = self._enterprise.services.clock
        started = clock.monotonic()
        info = self._info()
        error: BaseException | None = None
        route, permission = self._rule("POST", path)
        try:
            self._authorize(permission)
            with run_vars(info):
                return await run()
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._audit(info, path, route, error, int((clock.monotonic() - started) * 1000))

    # -- tframex's API ---------------------------------------------------------------------

    async def _conversation(self, agent_name: str, text: str) -> str:
        """Open (or continue) this context's conversation, as the HTTP run handler does."""
        if self._conversation_agent not in (None, agent_name):
            raise ValidationError(
                f"this context records a conversation with {self._conversation_agent!r}: open another "
                f"run_context() to talk to {agent_name!r}"
            )
        services = self._enterprise.services
        store = ConversationStore(services.storage, services.clock, conversation_cache(services))
        guard = CallerGuard.for_principal(self.principal)
        principal = self.principal
        uid = None if principal is None or getattr(principal, "external", False) else getattr(principal, "id", None)
        owner = None
        if principal is not None:
            owner = f"{principal.auth_method}:{principal.id}" if getattr(principal, "external", False) else principal.id
        security = self._enterprise.enterprise_config.security.enabled

        def may_use(row: dict[str, Any]) -> bool:
            return not security or guard.allowed("system.admin") or conversation_owner(row) == owner

        first = self._conversation_agent is None
        cid = await store.open(self.conversation_id, uid, owner, agent_name, text[:80], may_use)
        if first:
            # The stored turns become the agent's memory, as over HTTP.
            history = await store.history(cid, services.config.server.history_limit)
            self.engine._history[agent_name] = history
        self.conversation_id, self._conversation_agent = cid, agent_name
        return cid

    async def call_agent(self, agent_name: str, input_message: str | Message, **kwargs: Any) -> Message:
        async def run() -> Message:
            if agent_name not in self._app._agents:
                raise NotFoundError(f"no agent named {agent_name!r}")
            if not self.record_conversation:
                result: Message = await self.engine.call_agent(agent_name, input_message, **kwargs)
                return result
            text = input_message if isinstance(input_message, str) else (input_message.content or "")
            cid = await self._conversation(agent_name, text)
            token = current_run.set(replace(current_run.get() or RunInfo(), conversation_id=cid))
            try:
                with capture_turn() as turn:
                    result = await self.engine.call_agent(agent_name, input_message, **kwargs)
            finally:
                current_run.reset(token)
            services = self._enterprise.services
            store = ConversationStore(services.storage, services.clock, conversation_cache(services))
            await store.append(cid, turn.messages_or([("user", text), ("assistant", result.content)]))
            return result

        return await self._envelope(f"/agents/{quote(agent_name, safe='')}/run", run)

    async def call_agent_stream(
        self, agent_name: str, input_message: str | Message, **kwargs: Any
    ) -> AsyncGenerator[MessageChunk, None]:
        path = f"/agents/{quote(agent_name, safe='')}/run"
        clock = self._enterprise.services.clock
        started = clock.monotonic()
        info = self._info()
        error: BaseException | None = None
        route, permission = self._rule("POST", path)
        try:
            self._authorize(permission)
            if agent_name not in self._app._agents:
                raise NotFoundError(f"no agent named {agent_name!r}")
            stream = self.engine.call_agent_stream(agent_name, input_message, **kwargs)
            try:
                while True:
                    # Set per step: the consumer may drive this generator from another task.
                    with run_vars(info):
                        try:
                            chunk = await stream.__anext__()
                        except StopAsyncIteration:
                            break
                    yield chunk
            finally:
                await stream.aclose()
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._audit(info, path, route, error, int((clock.monotonic() - started) * 1000))

    async def run_flow(
        self,
        flow_ref: str | Flow,
        initial_input: Message | str,
        initial_shared_data: dict[str, Any] | None = None,
        flow_template_vars: dict[str, Any] | None = None,
    ) -> FlowContext:
        flow = self._app.get_flow(flow_ref) if isinstance(flow_ref, str) else flow_ref
        if not isinstance(flow, Flow):
            if isinstance(flow_ref, str):
                raise ValueError(f"Flow with name '{flow_ref}' not found.")  # tframex's own error
            raise TypeError("flow_ref must be a flow name (str) or a Flow instance.")
        text = initial_input if isinstance(initial_input, str) else (initial_input.content or "")
        services = self._enterprise.services

        async def run() -> FlowContext:
            _, ctx = await run_flow(
                flow,
                text,
                self.engine,
                events=services.events,
                clock=services.clock,
                shared_data=initial_shared_data,
                template_vars=flow_template_vars,
            )
            return ctx

        return await self._envelope(f"/flows/{quote(flow.flow_name, safe='')}/run", run)
