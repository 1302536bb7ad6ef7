"""The seed's integration style: a ``TFrameXApp`` that takes the enterprise keywords itself.

``EnterpriseTFrameXApp`` (also exported as ``tframex_asgi.TFrameXApp``, so the seed's examples
only change their import) is a :class:`tframex.TFrameXApp`: every other argument, and agents,
tools, flows and MCP, behave as upstream. On top of that it owns one enterprise stack, built
from the seed's six keywords (and ``server_config``, the ``server:`` section: ``gc_freeze``,
``server_timing``) exactly as :func:`~tframex_asgi.build_stack` builds it:

- the app is an ASGI app: ``uvicorn module:app`` serves the TFrameX endpoint behind the layers
  (the seed's "automatic middleware registration when features are enabled");
- ``app.run_context(principal=...)`` gives tframex's runtime context whose runs are authorised,
  measured, recorded and audited through the same services (see :mod:`tframex_asgi.inprocess`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from tframex import BaseLLMWrapper, TFrameXApp

from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.endpoint.app import TFrameXEndpoint
from tframex_asgi.errors import AuthenticationError
from tframex_asgi.inprocess import EnterpriseRuntimeContext
from tframex_asgi.paths import RouteTable
from tframex_asgi.rbac.layer import AuthorizationMiddleware
from tframex_asgi.services import Services
from tframex_asgi.stack import EnterpriseStack
from tframex_asgi.types import Receive, Scope, Send

__all__ = ["EnterpriseTFrameXApp"]


def _find_layer(app: Any, kind: type) -> Any:
    for _ in range(32):  # the stack is a handful of layers deep; never loop on a cycle
        if app is None or isinstance(app, kind):
            return app
        app = getattr(app, "app", None)
    return None


class EnterpriseTFrameXApp(TFrameXApp):  # type: ignore[misc]
    def __init__(
        self,
        *args: Any,
        enable_metrics: bool = False,
        metrics_config: Mapping[str, Any] | None = None,
        enable_persistence: bool = False,
        persistence_config: Mapping[str, Any] | None = None,
        enable_security: bool = True,
        security_config: Mapping[str, Any] | None = None,
        server_config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # Validated before tframex starts anything: a bad key fails here, naming it.
        config = EnterpriseConfig.from_kwargs(
            enable_metrics=enable_metrics,
            metrics_config=metrics_config,
            enable_persistence=enable_persistence,
            persistence_config=persistence_config,
            enable_security=enable_security,
            security_config=security_config,
            server_config=server_config,
        )
        super().__init__(*args, **kwargs)
        self.enterprise_config = config
        self.services = Services(config)
        self.endpoint = TFrameXEndpoint(self)
        self.stack = EnterpriseStack(self.endpoint, services=self.services)
        authz = _find_layer(self.stack.app, AuthorizationMiddleware)
        self.route_table: RouteTable[str] | None = authz.table if authz is not None else None
        self._holders = 0
        self._started_by_us = False
        self._hold_lock = asyncio.Lock()

    @property
    def audit(self) -> Any:
        """The stack's audit logger, or None when auditing is off."""
        return self.services.audit if "audit" in self.stack.layers else None

    # -- ASGI: the endpoint behind the layers -------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.stack(scope, receive, send)

    # -- in-process runs ------------------------------------------------------------------------

    def run_context(
        self,
        llm_override: BaseLLMWrapper | None = None,
        *,
        principal: Any = None,
        conversation_id: str | None = None,
        record_conversation: bool = False,
    ) -> EnterpriseRuntimeContext:
        """tframex's runtime context; ``principal`` (a :class:`~tframex_asgi.auth.Principal`,
        e.g. from :meth:`principal_for`) is who runs are authorised and attributed to.

        ``record_conversation=True`` (or a ``conversation_id`` to continue) stores the context's
        ``call_agent`` turns in conversations/messages as ``POST /agents/{name}/run`` does, owned
        by the principal; ``ctx.conversation_id`` is its id."""
        return EnterpriseRuntimeContext(
            self,
            llm_override or self.default_llm,
            principal=principal,
            conversation_id=conversation_id,
            record_conversation=record_conversation,
        )

    async def acquire(self) -> None:
        """Start the services (storage, migrations, queues) unless something already did."""
        async with self._hold_lock:
            if self._holders == 0 and not self.services.started:
                await self.services.startup()
                self._started_by_us = True
            self._holders += 1

    async def release(self) -> None:
        """The last holder stops what :meth:`acquire` started: queued rows are flushed then."""
        async with self._hold_lock:
            self._holders -= 1
            if self._holders == 0 and self._started_by_us:
                self._started_by_us = False
                await self.services.shutdown()

    async def __aenter__(self) -> EnterpriseTFrameXApp:
        """``async with app:`` keeps the services up across many run contexts."""
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()

    async def principal_for(self, username: str) -> Any:
        """The :class:`~tframex_asgi.auth.Principal` of a stored, active user (roles resolved
        by the RBAC engine, as at login). Needs the services started (inside ``async with``)."""
        from tframex_asgi.auth import Principal
        from tframex_asgi.auth.base import PermissionResolver

        user = await self.services.identity.get_user_by_username(username)
        if user is None or not user.get("is_active", True):
            raise AuthenticationError(f"no active user named {username!r}")
        roles, permissions = await PermissionResolver(self.services.rbac, self.services.config.security.rbac).for_user(
            str(user["id"])
        )
        return Principal(str(user["id"]), str(user["username"]), roles, permissions, "in_process")
