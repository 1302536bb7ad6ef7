"""Persistence: backends chosen by URL scheme (memory://, sqlite:///, postgresql://, s3://).

Drivers are imported only when their scheme is used; a missing optional driver names the pip
extra that installs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tframex_asgi.errors import ConfigError
from tframex_asgi.storage.base import BaseStorage, Row
from tframex_asgi.storage.schema import INDEXES, TABLES

if TYPE_CHECKING:  # real types for checkers; lazy at run time (each imports its driver)
    from tframex_asgi.config.persistence import PersistenceConfig
    from tframex_asgi.storage.memory import InMemoryStorage, MemoryStorage
    from tframex_asgi.storage.postgres import PostgreSQLStorage, PostgresStorage
    from tframex_asgi.storage.s3 import S3Storage
    from tframex_asgi.storage.sqlite import SQLiteStorage

__all__ = [
    "INDEXES",
    "TABLES",
    "BaseStorage",
    "InMemoryStorage",
    "MemoryStorage",
    "PostgreSQLStorage",
    "PostgresStorage",
    "Row",
    "S3Storage",
    "SQLiteStorage",
    "open_storage",
]

# The seed's backend class names (and ours), imported on first use so that naming one never
# pulls in a driver that is not installed.
_LAZY = {  # name -> (module, driver kind in _EXTRAS or None)
    "InMemoryStorage": ("memory", None),
    "MemoryStorage": ("memory", None),
    "SQLiteStorage": ("sqlite", "sqlite"),
    "PostgreSQLStorage": ("postgres", "postgresql"),
    "PostgresStorage": ("postgres", "postgresql"),
    "S3Storage": ("s3", "s3"),
}

_EXTRAS = {"postgresql": ("asyncpg", "postgres"), "s3": ("aiobotocore", "s3"), "sqlite": ("aiosqlite", "")}


def _require(kind: str) -> None:
    module, extra = _EXTRAS[kind]
    try:
        __import__(module)
    except ImportError as exc:
        hint = f"pip install 'tframex-asgi[{extra}]'" if extra else f"pip install {module}"
        raise ConfigError("enterprise.persistence.connection_string", f"the {kind} backend needs {hint}") from exc


def open_storage(url: str, config: PersistenceConfig | None = None) -> BaseStorage:
    """The backend for ``url`` (not yet connected: call ``await storage.connect()``)."""
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        from tframex_asgi.storage.memory import MemoryStorage

        return MemoryStorage(url, config)
    if scheme == "sqlite":
        _require("sqlite")
        from tframex_asgi.storage.sqlite import SQLiteStorage

        return SQLiteStorage(url, config)
    if scheme in ("postgresql", "postgres"):
        _require("postgresql")
        if config is not None and config.replica_urls:
            from tframex_asgi.storage.replicas import ReplicatedPostgresStorage

            return ReplicatedPostgresStorage(url, config)
        from tframex_asgi.storage.postgres import PostgresStorage

        return PostgresStorage(url, config)
    if scheme == "s3":
        _require("s3")
        from tframex_asgi.storage.s3 import S3Storage

        s3: BaseStorage = S3Storage(url, config)
        return s3
    shown = url.split("@")[-1] if "@" in url else url  # never echo a password
    raise ConfigError(
        "enterprise.persistence.connection_string",
        f"unsupported storage URL {shown!r} (memory://, sqlite:///path, postgresql://, s3://bucket/prefix)",
    )


def __getattr__(name: str) -> Any:
    lazy = _LAZY.get(name)
    if lazy is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, driver = lazy
    if driver is not None:
        _require(driver)
    return getattr(importlib.import_module(f"tframex_asgi.storage.{module}"), name)
