"""The seed's three middlewares by name: ``MetricsMiddleware``, ``PersistenceMiddleware`` and
``SecurityMiddleware``, for its ``app.add_middleware(...)`` lines.

Each is the enterprise stack with one feature switched on (its own ``*_config`` mapping, or
keyword options, is the seed's section). Added around each other, as the seed's three
``add_middleware`` calls do, they merge into **one** stack: one storage, one event bus, one set
of layers in DESIGN.md's order, whatever order they were added in. Security is on only when
``SecurityMiddleware`` is present (``EnterpriseMiddleware`` is the one that is secure by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from tframex_asgi.clock import Clock
from tframex_asgi.compat import Interface
from tframex_asgi.stack import EnterpriseStack

__all__ = ["MetricsMiddleware", "PersistenceMiddleware", "SecurityMiddleware"]

_OFF = {"enable_metrics": False, "enable_persistence": False, "enable_security": False}


class _FeatureMiddleware(EnterpriseStack):
    feature: ClassVar[str]
    feature_settings: dict[str, Any]

    def __init__(
        self,
        app: Any,
        config: Mapping[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        interface: Interface = "auto",
        **options: Any,
    ) -> None:
        section = {**(config or {}), **options}
        settings: dict[str, Any] = {f"enable_{self.feature}": True, f"{self.feature}_config": section}
        # Wrapping one of us that has not started: take over its settings and its app, so the
        # seed's three add_middleware calls build one stack instead of three that share nothing.
        if isinstance(app, _FeatureMiddleware) and not app.services.started:
            settings = {**app.feature_settings, **settings}
            clock = clock or app.services.clock
            app, interface = app.inner, "asgi3"
        self.feature_settings = settings
        super().__init__(app, clock=clock, interface=interface, **{**_OFF, **settings})


class MetricsMiddleware(_FeatureMiddleware):
    """``app.add_middleware(MetricsMiddleware, backends=["prometheus"])``: the metrics layer,
    ``GET /metrics`` and agent/tool/flow metrics of a TFrameX endpoint inside ``app``."""

    feature = "metrics"


class PersistenceMiddleware(_FeatureMiddleware):
    """``app.add_middleware(PersistenceMiddleware, backend="sqlite")``: adds no HTTP layer of its
    own; it opens the storage (migrations at startup) and makes a TFrameX endpoint inside ``app``
    record conversations and executions there."""

    feature = "persistence"


class SecurityMiddleware(_FeatureMiddleware):
    """``app.add_middleware(SecurityMiddleware, auth_providers=["api_key"])``: authentication,
    body limit, rate limits, authorization and audit."""

    feature = "security"
