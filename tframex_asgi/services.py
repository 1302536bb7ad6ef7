"""The composition root: every live object one stack shares, built in dependency order.

Config is frozen data; everything that holds a connection, a clock, a cache or a registry is a
part of :class:`Services`, created on first use by the one builder below that knows its
dependencies. A builder asks for the parts it depends on before it registers its own startup
and shutdown hooks, so startup always runs in dependency order (storage before the engines that
seed it, the write queue before the audit logger that writes through it) whichever part is asked
for first, and shutdown runs in reverse.

The stack asks for the parts its enabled layers need while it builds them; the CLI and tests
ask for the few they use (``services.identity``, ``services.rbac``, ...). A test may replace a
part by assigning the attribute before anything asks for it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tframex_asgi.admin.service import AdminService
from tframex_asgi.audit.backup import ScheduledBackup, backup_scheduled
from tframex_asgi.audit.journal import AuditJournal
from tframex_asgi.audit.logger import AuditLogger, AuditSink
from tframex_asgi.auth.changes import ChangeWatcher, shares_changes
from tframex_asgi.auth.idp import HttpClient
from tframex_asgi.auth.passwords import PasswordHasher
from tframex_asgi.auth.store import IdentityStore
from tframex_asgi.clock import Clock, SystemClock
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.events import EventBus
from tframex_asgi.mcp.metrics import mcp_callbacks
from tframex_asgi.metrics.assemble import build_collector
from tframex_asgi.metrics.collector import MetricsCollector
from tframex_asgi.ratelimit.backend import Backend, RateLimitStats, open_backend, redis_pool
from tframex_asgi.ratelimit.bruteforce import AuthFailureGuard
from tframex_asgi.rbac.engine import RBACEngine
from tframex_asgi.storage import open_storage
from tframex_asgi.storage.queue import WriteQueue

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from tframex_asgi.endpoint.conversations import ConversationCache
    from tframex_asgi.endpoint.recorder import Recorder
    from tframex_asgi.mcp.hub import MCPHub
    from tframex_asgi.metrics.otel import TracingSystem
    from tframex_asgi.paths import RouteTable
    from tframex_asgi.storage.base import BaseStorage

__all__ = ["Services"]

logger = logging.getLogger("tframex_asgi.services")
Hook = Callable[[], Awaitable[None]]


class Services:
    """The parts of one stack. ``tracer_provider`` / ``meter_provider``: an OpenTelemetry
    provider of your own for the traces / metrics (else the stack builds one from config)."""

    def __init__(
        self,
        config: EnterpriseConfig,
        *,
        clock: Clock | None = None,
        events: EventBus | None = None,
        storage: BaseStorage | None = None,
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.events = events or EventBus()
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self.started = False
        # First part: everything else reads or writes it, so it connects first and closes last.
        # A storage passed in is the caller's to connect and close.
        if storage is None:
            storage = self._open_storage()
            self._lifecycle(storage.connect, storage.close)
        self.storage: BaseStorage = storage
        # Filled while the stack is built: the stack's own HTTP routes (/metrics, /audit,
        # /admin/*), the authorization route table the context layer matches once per request,
        # the path prefix whose errors take OpenAI's shape, and what the endpoint shares.
        self.routes: list[BaseRoute] = []
        self.route_table: RouteTable[str] | None = None
        self.openai_prefix: str | None = None
        self.mcp: MCPHub | None = None
        self.recorder: Recorder | None = None
        self.conversation_cache: ConversationCache | None = None
        self._change_listeners: list[Callable[[], None]] = []
        self._http: HttpClient | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def on_startup(self, hook: Hook) -> None:
        self._startup.append(hook)

    def on_shutdown(self, hook: Hook) -> None:
        self._shutdown.append(hook)

    def _lifecycle(self, start: Hook | None, stop: Hook | None) -> None:
        if self.started and start is not None:
            logger.warning("%r was created after startup: it was not started", start)
        if start is not None:
            self.on_startup(start)
        if stop is not None:
            self.on_shutdown(stop)

    async def startup(self) -> None:
        if self.started:
            return
        try:
            # By index: a hook that builds a part adds that part's startup, which runs too.
            i = 0
            while i < len(self._startup):
                await self._startup[i]()
                i += 1
        except BaseException:
            # Shutdown hooks must tolerate a component that never started.
            await self._run_shutdown()
            raise
        self.started = True

    async def shutdown(self) -> None:
        if not self.started:
            return
        self.started = False
        await self._run_shutdown()

    async def _run_shutdown(self) -> None:
        for hook in reversed(self._shutdown):
            try:
                await hook()
            except Exception:
                logger.exception("shutdown hook %r failed", hook)

    def built(self, part: str) -> Any:
        """The part named ``part`` if something already built it, else None (never builds)."""
        return self.__dict__.get(part)

    # -- storage and identity -------------------------------------------------------------

    def _open_storage(self) -> BaseStorage:
        """The configured storage (persistence on), else a process-local memory store: users,
        roles and keys need somewhere to live even when persistence is off."""
        persistence = self.config.persistence
        return open_storage(persistence.url if persistence.enabled else "memory://", persistence)

    @cached_property
    def changes(self) -> ChangeWatcher | None:
        """Grant changes made by other processes (None for process-local storage)."""
        storage = self.storage
        if not shares_changes(storage):
            return None
        watcher = ChangeWatcher(storage, self._forget)
        self._lifecycle(watcher.start, watcher.stop)
        return watcher

    def on_change(self, listener: Callable[[], None]) -> None:
        """Also call ``listener`` when another process changed a grant."""
        self._change_listeners.append(listener)

    async def _forget(self) -> None:
        identity, rbac = self.built("identity"), self.built("rbac")
        if identity is not None:
            identity.invalidate()
        if rbac is not None:
            rbac.invalidate()
        for listener in self._change_listeners:
            listener()
        if rbac is not None:
            # Reloaded now, not on the next async lookup: token principals resolve their roles'
            # permissions synchronously from the loaded role table.
            await rbac.reload()

    @cached_property
    def identity(self) -> IdentityStore:
        storage, providers = self.storage, self.config.security.auth_providers
        basic = providers.basic
        hasher = PasswordHasher(
            time_cost=basic.argon2_time_cost, memory_cost=basic.argon2_memory_kib, parallelism=basic.argon2_parallelism
        )
        store = IdentityStore(
            storage,
            self.clock,
            hasher=hasher,
            key_cache_ttl=providers.api_key.cache_ttl,
            login_cache_ttl=basic.cache_ttl,
        )
        self._lifecycle(None, store.drain)
        self.changes  # noqa: B018 - revocations made elsewhere reach this store's caches
        return store

    @cached_property
    def rbac(self) -> RBACEngine:
        engine = RBACEngine(self.storage, self.clock, self.config.security.rbac)
        self._lifecycle(engine.start, None)
        self.changes  # noqa: B018 - grants changed elsewhere reach this engine
        return engine

    @cached_property
    def admin(self) -> AdminService:
        return AdminService(self, self.rbac, self.identity)

    def http(self, timeout: float) -> HttpClient:
        """The HTTP client of the identity-provider lookups (JWKS, discovery, introspection)."""
        if self._http is None:
            self._http = HttpClient(timeout)
            self._lifecycle(self._http.start, self._http.close)
        return self._http

    # -- records --------------------------------------------------------------------------

    @cached_property
    def writer(self) -> WriteQueue:
        """The write queue of execution, audit and metrics rows."""
        writer = WriteQueue(self.storage, self.config.persistence.queue)
        self._lifecycle(writer.start, writer.stop)
        return writer

    @cached_property
    def journal(self) -> AuditJournal:
        """The fsync journal of ``audit.durability: durable``, in front of the write queue."""
        journal = AuditJournal(self.writer, self.config.security.audit.journal_path)
        self._lifecycle(journal.start, journal.stop)
        return journal

    @property
    def audit_enabled(self) -> bool:
        security = self.config.security
        return security.enabled and security.audit.level != "off"

    @property
    def audit(self) -> AuditLogger | None:
        """The audit logger, or None when audit is off."""
        return self.audit_logger if self.audit_enabled else None

    @cached_property
    def audit_logger(self) -> AuditLogger:
        """The audit logger whatever the level (pruning records its checkpoint even with audit off)."""
        cfg = self.config.security.audit
        sink: AuditSink = self.journal if cfg.durability == "durable" else self.writer
        audit = AuditLogger(sink, cfg, clock=self.clock)
        # After the sink's hooks: closed first, so the queued rows and the chain's end record
        # reach a sink that still accepts rows.
        self._lifecycle(audit.start, audit.aclose)
        return audit

    @cached_property
    def backup(self) -> ScheduledBackup | None:
        """The scheduled S3 archive of ``persistence.backup_to_s3``."""
        if not backup_scheduled(self.config):
            return None

        backup = ScheduledBackup(self.config, self.storage, self.clock)
        self._lifecycle(backup.start, backup.stop)
        return backup

    # -- rate limits ----------------------------------------------------------------------

    @cached_property
    def ratelimit_stats(self) -> RateLimitStats:
        return RateLimitStats()

    @cached_property
    def redis_pools(self) -> dict[str, Any]:
        """``{url: connection pool}``: one per Redis URL and process."""
        return {}

    @cached_property
    def ratelimit(self) -> Backend | None:
        """The rate-limit backend (``await .ping()`` tells readiness), None when rate limiting is off."""
        cfg = self.config.security.rate_limiting
        if not cfg.enabled:
            return None
        pool: Any = None
        scheme, _, rest = cfg.storage.partition("://")
        scheme = scheme.removeprefix("async+")
        if scheme in ("redis", "rediss"):
            url = f"{scheme}://{rest}"
            pool = self.redis_pools.get(url)
            if pool is None:
                pool = self.redis_pools[url] = redis_pool(url, cfg)
                self._lifecycle(None, pool.aclose)
        return open_backend(cfg, stats=self.ratelimit_stats, pool=pool)

    @cached_property
    def auth_failures(self) -> AuthFailureGuard | None:
        """The brute-force guard of the authentication layer (rate limiting on), else None."""
        backend = self.ratelimit
        if backend is None:
            return None
        cfg = self.config.security.rate_limiting
        return AuthFailureGuard(backend, cfg.auth_failures, fail_open=cfg.fail_open)

    # -- metrics --------------------------------------------------------------------------

    @cached_property
    def metrics(self) -> MetricsCollector:
        """The metrics collector; ``GET /metrics`` joins :attr:`routes` when Prometheus is in-app."""
        built = build_collector(
            self.config.metrics,
            events=self.events,
            clock=self.clock,
            storage=lambda: (self.writer, self.storage) if self.config.persistence.enabled else None,
            writer=lambda: self.built("writer"),
            observed=mcp_callbacks(lambda: self.mcp),
            meter_provider=self.meter_provider,
        )
        self._lifecycle(built.collector.start, built.collector.stop)
        self.routes.extend(built.routes)
        return built.collector

    @cached_property
    def tracing(self) -> TracingSystem | None:
        """OpenTelemetry tracing when configured (``tracer_provider`` is used as is when given)."""
        otel = self.config.metrics.backends.opentelemetry
        if not (self.config.metrics.enabled and otel.enabled and otel.traces):
            return None
        from tframex_asgi.metrics.otel import TracingSystem

        tracing = TracingSystem(otel, provider=self.tracer_provider)
        self.events.subscribe(tracing.on_event)
        self._lifecycle(None, tracing.shutdown)
        return tracing
