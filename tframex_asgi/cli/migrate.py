"""``tframex-asgi migrate``: apply the schema's pending migrations to the configured database."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from typing import Any

from tframex_asgi.cli.common import add_config_arg, config_from_args
from tframex_asgi.errors import ConfigError

__all__ = ["register", "storage_from_args"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("migrate", help="create or upgrade the database schema")
    add_config_arg(parser)
    parser.add_argument("--url", help="storage URL (default: enterprise.persistence.connection_string)")
    parser.set_defaults(func=_migrate)


def storage_from_args(args: argparse.Namespace, *, migrations: bool) -> Any:
    """The configured storage (or ``--url``), not yet connected."""
    from tframex_asgi.storage import open_storage

    persistence = config_from_args(args).persistence
    url = getattr(args, "url", None) or (persistence.url if persistence.enabled else None)
    if not url:
        raise ConfigError("enterprise.persistence", "persistence is not enabled: set it in --config or pass --url")
    return open_storage(url, dataclasses.replace(persistence, migrations=migrations))


def _migrate(args: argparse.Namespace) -> int:
    async def run() -> tuple[list[int], int]:
        storage = storage_from_args(args, migrations=False)
        await storage.connect()
        try:
            applied = await storage.migrate()
            return applied, await storage.schema_version()
        finally:
            await storage.close()

    applied, version = asyncio.run(run())
    if applied:
        print(f"applied migrations {', '.join(map(str, applied))}; schema version {version}")
    else:
        print(f"schema is up to date (version {version})")
    return 0
