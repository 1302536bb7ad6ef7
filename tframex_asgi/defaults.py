"""The embedded defaults `tframex-asgi serve` (and every CLI command) runs on.

A config file given with ``--config`` is layered over them (see
:mod:`tframex_asgi.config.layering`), so a file holding only a rate-limit block keeps
persistence, Basic auth, audit and metrics on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from tframex_asgi.config import EnterpriseConfig

__all__ = ["DEFAULT_BLOCK", "DEFAULT_DB_URL", "default_config", "serve_config"]

DEFAULT_DB_URL = "sqlite:///./tframex.db"

# The serve defaults as the contents of an ``enterprise:`` block, in full mapping form so a
# file's keys merge into them.
DEFAULT_BLOCK: Mapping[str, Any] = {
    "persistence": {"enabled": True, "connection_string": DEFAULT_DB_URL, "migrations": True},
    "security": {
        "enabled": True,
        "auth_providers": {"api_key": {"enabled": True}, "basic": {"enabled": True}},
        "rate_limiting": {"enabled": True, "storage": "memory://", "default": "600/minute"},
        "audit": {"level": "security"},
    },
    "metrics": {"enabled": True, "backends": {"prometheus": {"enabled": True}}},
    # The process is serve's own: what startup built is frozen out of the collector's full passes.
    "server": {"gc_freeze": True},
}


def default_config() -> EnterpriseConfig:
    """SQLite at ./tframex.db, security on (API keys and Basic), in-memory rate limits,
    security-level audit, Prometheus at GET /metrics and startup's objects frozen (gc_freeze)."""
    return EnterpriseConfig.from_mapping(DEFAULT_BLOCK)


def serve_config(path: str | os.PathLike[str] | None = None) -> EnterpriseConfig:
    """The serve defaults, with the file at ``path`` (if any) layered over them."""
    if path is None:
        return default_config()
    from tframex_asgi.config.layering import layer_over
    from tframex_asgi.config.loader import read_block

    return EnterpriseConfig.from_mapping(layer_over(DEFAULT_BLOCK, read_block(path)))
