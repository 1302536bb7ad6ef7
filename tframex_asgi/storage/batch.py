"""Writing one batch of queued rows in order, isolating the rows the schema refuses."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tframex_asgi.errors import ConflictError, ValidationError
from tframex_asgi.storage.schema import TABLES

if TYPE_CHECKING:
    from tframex_asgi.storage.base import BaseStorage

__all__ = ["BatchWriting", "Item"]

logger = logging.getLogger("tframex_asgi.storage.queue")
# (table, row, trusted): see WriteQueue.submit (the flag only spares submit a copy of the row).
Item = tuple[str, dict[str, Any], bool]
# Foreign keys to users that a row may lose rather than be lost: token identities have no users row.
_USER_REFS = {
    t.name: tuple(c.name for c in t.columns if c.references and c.references.table == "users") for t in TABLES.values()
}


class BatchWriting:
    """The write half of :class:`~tframex_asgi.storage.queue.WriteQueue`."""

    storage: BaseStorage
    written_total: int
    rejected_total: int
    _spilling: bool  # already spilling: an outage was logged, retries log at debug

    async def _write(self, items: list[Item], done: Callable[[int], None]) -> bool:
        """Write ``items`` in order, run by run of one table; False at the first outage."""
        start = 0
        while start < len(items):
            table = items[start][0]
            end = start
            while end < len(items) and items[end][0] == table:
                end += 1
            rows = [data for _, data, _ in items[start:end]]
            try:
                await self.storage.write_many(table, rows, skip_existing=True)
            except (ValidationError, ConflictError):
                # One bad row (or a trusted producer's bug): every row again, one by one.
                if not await self._one_by_one(table, rows):
                    return False
            except Exception as exc:
                self._log_outage(exc)
                return False
            else:
                self.written_total += len(rows)
            done(len(rows))
            start = end
        return True

    def _log_outage(self, exc: Exception) -> None:
        log = logger.debug if self._spilling else logger.warning
        cause = exc.__cause__ or exc  # the driver error (our StorageError is generic)
        log("write queue: database unavailable (%s: %s); spilling", type(cause).__name__, cause)

    async def _one_by_one(self, table: str, rows: list[dict[str, Any]]) -> bool:
        """Isolate the rows the schema refuses, so one bad row never blocks the others."""
        for row in rows:
            attempt = row
            while True:
                try:
                    await self.storage.write_many(table, [attempt], skip_existing=True)
                except ConflictError as exc:
                    refs = [c for c in _USER_REFS[table] if attempt.get(c) is not None]
                    if exc.code == "foreign_key" and refs:
                        logger.warning("write queue: %s row %s names unknown users; unlinked", table, row.get("id"))
                        attempt = {**attempt, **dict.fromkeys(refs)}
                        continue
                    self._reject(table, exc)
                except ValidationError as exc:
                    self._reject(table, exc)
                except Exception as exc:
                    self._log_outage(exc)
                    return False
                else:
                    self.written_total += 1
                break
        return True

    def _reject(self, table: str, exc: Exception) -> None:
        self.rejected_total += 1
        logger.error("write queue: rejected a %s row: %s", table, exc)
