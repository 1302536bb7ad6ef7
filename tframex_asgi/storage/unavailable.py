"""A database failure as clients see it: 503 ``storage_unavailable`` with a generic message.

Driver messages name the database host and port (asyncpg: ``Connect call failed ('10.0.0.5',
5432)``) or the file path (SQLite), which a client has no business seeing; the detail goes to the
log instead. An outage fails every query, so the log line is throttled to one warning per
:data:`LOG_EVERY` seconds per backend (the rest at debug).
"""

from __future__ import annotations

import logging
import time

from tframex_asgi.errors import StorageError

__all__ = ["LOG_EVERY", "MESSAGE", "storage_unavailable"]

logger = logging.getLogger("tframex_asgi.storage")
MESSAGE = "the database is temporarily unavailable: retry later"
LOG_EVERY = 5.0
# Process-wide (not per request): when each backend last logged a warning.
_last_warning: dict[str, float] = {}


def storage_unavailable(backend: str, exc: BaseException) -> StorageError:
    """The error to raise (``from exc``) for a driver failure that is not the caller's fault."""
    now = time.monotonic()
    if now - _last_warning.get(backend, -LOG_EVERY) >= LOG_EVERY:
        _last_warning[backend] = now
        logger.warning("%s unavailable: %s: %s", backend, type(exc).__name__, exc)
    else:
        logger.debug("%s unavailable: %s: %s", backend, type(exc).__name__, exc)
    return StorageError(MESSAGE, code="storage_unavailable")
