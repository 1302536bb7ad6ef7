"""tframex-asgi: enterprise layers for ASGI apps serving TFrameX agents."""

from typing import TYPE_CHECKING, Any

from tframex_asgi.config import EnterpriseConfig, load_config, loads_config
from tframex_asgi.errors import ConfigError, TFrameXASGIError
from tframex_asgi.middleware import MetricsMiddleware, PersistenceMiddleware, SecurityMiddleware
from tframex_asgi.services import Services
from tframex_asgi.stack import EnterpriseMiddleware, EnterpriseStack, build_stack

if TYPE_CHECKING:
    from tframex_asgi.app import EnterpriseTFrameXApp
    from tframex_asgi.endpoint import TFrameXEndpoint, create_app

    TFrameXApp = EnterpriseTFrameXApp

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "EnterpriseConfig",
    "EnterpriseMiddleware",
    "EnterpriseStack",
    "EnterpriseTFrameXApp",
    "MetricsMiddleware",
    "PersistenceMiddleware",
    "SecurityMiddleware",
    "Services",
    "TFrameXASGIError",
    "TFrameXApp",
    "TFrameXEndpoint",
    "__version__",
    "build_stack",
    "create_app",
    "load_config",
    "loads_config",
]


def __getattr__(name: str) -> Any:
    # Lazy: the drop-in app and the endpoint import tframex, which the middlewares alone never need.
    if name in ("TFrameXApp", "EnterpriseTFrameXApp"):
        from tframex_asgi.app import EnterpriseTFrameXApp

        return EnterpriseTFrameXApp
    if name in ("TFrameXEndpoint", "create_app"):
        from tframex_asgi import endpoint

        return getattr(endpoint, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
