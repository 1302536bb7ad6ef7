"""Persistence: backends chosen by URL scheme (memory://, sqlite:///, postgresql://, s3://).

Drivers are imported only when their scheme is used; a missing optional driver names the pip
extra that installs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tframex_asgi.errors import ConfigError
from tframex_asgi.storage.base import BaseStorage, Row
from tframex_asgi.storage.schema import INDEXES, TABLES

if TYPE_CHECKING:
    from tframex_asgi.config.persistence import PersistenceConfig

__all__ = ["INDEXES", "TABLES", "BaseStorage", "Row", "open_storage"]

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
