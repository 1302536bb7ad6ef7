"""Persistence: backends chosen by URL scheme (memory://, sqlite:///, postgresql://, s3://)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tframex_asgi.storage.base import BaseStorage, Row

if TYPE_CHECKING:
    from tframex_asgi.config.persistence import PersistenceConfig

__all__ = ["BaseStorage", "Row", "open_storage"]


def open_storage(url: str, config: PersistenceConfig | None = None) -> BaseStorage:
    """The backend for ``url`` (not yet connected: call ``await storage.connect()``)."""
    raise NotImplementedError("storage backends are being built")  # replaced by the storage work
