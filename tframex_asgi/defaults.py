"""The embedded defaults `tframex-asgi serve` runs on when no config file is given."""

from __future__ import annotations

from tframex_asgi.config import EnterpriseConfig

__all__ = ["DEFAULT_DB_URL", "default_config"]

DEFAULT_DB_URL = "sqlite:///./tframex.db"


def default_config() -> EnterpriseConfig:
    """SQLite at ./tframex.db, security on (API keys and Basic), in-memory rate limits,
    security-level audit and Prometheus at GET /metrics."""
    return EnterpriseConfig.from_kwargs(
        enable_persistence=True,
        persistence_config={"connection_string": DEFAULT_DB_URL, "migrations": True},
        enable_security=True,
        security_config={
            "auth_providers": ["api_key", "basic"],
            "rate_limiting": {"enabled": True, "storage": "memory://", "default": "600/minute"},
            "audit": "security",
        },
        enable_metrics=True,
        metrics_config={"backends": ["prometheus"]},
    )
