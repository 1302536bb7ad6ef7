"""tframex-asgi: enterprise layers for ASGI apps serving TFrameX agents."""

from tframex_asgi.config import EnterpriseConfig, load_config, loads_config
from tframex_asgi.errors import ConfigError, TFrameXASGIError
from tframex_asgi.middleware import MetricsMiddleware, PersistenceMiddleware, SecurityMiddleware
from tframex_asgi.services import Services
from tframex_asgi.stack import EnterpriseMiddleware, EnterpriseStack, build_stack

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "EnterpriseConfig",
    "EnterpriseMiddleware",
    "EnterpriseStack",
    "MetricsMiddleware",
    "PersistenceMiddleware",
    "SecurityMiddleware",
    "Services",
    "TFrameXASGIError",
    "__version__",
    "build_stack",
    "load_config",
    "loads_config",
]
