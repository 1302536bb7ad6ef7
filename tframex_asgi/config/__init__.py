"""Configuration: one frozen :class:`EnterpriseConfig`, from kwargs or YAML."""

from tframex_asgi.config.audit import AuditConfig
from tframex_asgi.config.loader import load_config, loads_config, substitute_env
from tframex_asgi.config.metrics import MetricsConfig
from tframex_asgi.config.model import EnterpriseConfig, ServerConfig
from tframex_asgi.config.persistence import PersistenceConfig
from tframex_asgi.config.ratelimit import RateLimitConfig
from tframex_asgi.config.security import SecurityConfig

__all__ = [
    "AuditConfig",
    "EnterpriseConfig",
    "MetricsConfig",
    "PersistenceConfig",
    "RateLimitConfig",
    "SecurityConfig",
    "ServerConfig",
    "load_config",
    "loads_config",
    "substitute_env",
]
