"""Support for the ``users``, ``roles`` and ``keys`` subcommands: one short-lived stack of
services (storage, RBAC, identity store, audit when configured) per command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from tframex_asgi.admin.service import AdminService
from tframex_asgi.cli.common import config_from_args
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.errors import ConfigError, NotFoundError
from tframex_asgi.services import Services
from tframex_asgi.timefmt import json_default, utc_iso

__all__ = ["KEY_WARNING", "print_rows", "require_durable_storage", "resolve_user", "run_admin", "with_admin"]

T = TypeVar("T")
logger = logging.getLogger("tframex_asgi.cli")
KEY_WARNING = "This API key is shown ONCE and cannot be recovered: store it now."


async def with_admin(config: EnterpriseConfig, work: Callable[[AdminService], Awaitable[T]]) -> T:
    services = Services(config)
    services.audit  # noqa: B018 - built before startup when audit is on: CLI changes are audited like HTTP ones
    admin = services.admin
    await services.startup()
    try:
        return await work(admin)
    finally:
        await services.shutdown()  # flushes the audit queue


def require_durable_storage(config: EnterpriseConfig) -> None:
    """Refuse to run against memory-only storage: a CLI process would create users, keys or
    roles in its own memory, print "store it now", and lose them when it exits."""
    if not config.persistence.enabled or config.persistence.url.startswith("memory:"):
        raise ConfigError(
            "enterprise.persistence",
            "persistence is off (memory-only storage), so users, keys and roles would be lost when this command "
            "exits; point --config at the file the server uses, or enable enterprise.persistence "
            "(e.g. connection_string: sqlite:///./tframex.db)",
        )


def run_admin(args: argparse.Namespace, work: Callable[[AdminService], Awaitable[T]]) -> T:
    config = config_from_args(args)
    require_durable_storage(config)
    return asyncio.run(with_admin(config, work))


async def resolve_user(admin: AdminService, ref: str) -> dict[str, Any]:
    """A user by id or by username."""
    row = await admin.identity.get_user(ref) or await admin.identity.get_user_by_username(ref)
    if row is None:
        raise NotFoundError(f"no user with id or username {ref!r}")
    return row


def print_rows(rows: Iterable[dict[str, Any]], columns: list[str], as_json: bool) -> None:
    rows = list(rows)
    if as_json:
        json.dump(rows, sys.stdout, indent=2, default=json_default)
        print()
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return utc_iso(value)
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
