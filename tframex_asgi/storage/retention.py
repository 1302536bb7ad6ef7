"""Retention (delete rows past a maximum age) and export (copy rows to another store, e.g. S3).

Each table ages by one TIMESTAMP column. Exports write with ``skip_existing``, so an interrupted
export can simply be run again: rows already copied are not copied twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from tframex_asgi.catalog.retention import AGE_COLUMNS
from tframex_asgi.errors import ValidationError
from tframex_asgi.storage.base import BaseStorage
from tframex_asgi.storage.schema import TABLES
from tframex_asgi.util import naive_utc

__all__ = ["AGE_COLUMNS", "age_column", "export_table", "prune"]

Progress = Callable[[int, int | None], None]  # (done, total or None)


def age_column(table: str) -> str:
    if table not in TABLES:
        raise ValidationError(f"unknown table {table!r}", code="unknown_table")
    column = AGE_COLUMNS.get(table)
    if column is None:
        raise ValidationError(f"table {table!r} has no retention (tables: {', '.join(AGE_COLUMNS)})")
    return column


async def prune(storage: BaseStorage, retention: Mapping[str, int], *, now: datetime | None = None) -> dict[str, int]:
    """Delete rows older than each table's maximum age (days); rows deleted per table."""
    now = now or naive_utc()
    return {
        table: await storage.delete_older_than(table, age_column(table), now - timedelta(days=days))
        for table, days in retention.items()
    }


async def export_table(
    source: BaseStorage,
    target: BaseStorage,
    table: str,
    *,
    before: datetime | None = None,
    page_size: int = 1000,
    progress: Progress | None = None,
) -> int:
    """Copy ``table``'s rows (only those older than ``before`` when given) into ``target``."""
    if page_size < 1:  # a page of 0 rows would copy nothing and look finished
        raise ValueError(f"page_size must be 1 or more, got {page_size}")
    column = age_column(table) if before is not None else None
    total = await source.count(table)
    order = [column or "id"] if table not in ("role_permissions", "user_roles") else None
    done = 0
    offset = 0
    while True:
        page = await source.read(table, order_by=order, limit=page_size, offset=offset)
        if not page:
            break
        offset += len(page)
        if column is not None and before is not None:
            # Ascending by age with NULLs last: the first row not older than ``before`` ends it.
            young = next((i for i, r in enumerate(page) if r[column] is None or r[column] >= before), None)
            if young is not None:
                page = page[:young]
                offset = -1
        if page:
            await target.write_many(table, page, skip_existing=True)
            done += len(page)
        if progress is not None:
            progress(done, None if column else total)
        if offset < 0:
            break
    return done
