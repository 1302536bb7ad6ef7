"""``tframex-asgi data prune|export``: retention and archival of stored rows.

Progress goes to stderr, results to stdout, so the output can be piped.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta
from typing import Any, TextIO

from tframex_asgi.cli.common import add_config_arg, config_from_args
from tframex_asgi.cli.migrate import storage_from_args
from tframex_asgi.errors import ConfigError

__all__ = ["ProgressBar", "register"]


class ProgressBar:
    """``table [#####-----] 500/1000`` redrawn in place on a terminal, a line per 10% otherwise."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label, self.width = label, width
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._shown = -1
        self._last = ""
        self._printed = ""

    def __call__(self, done: int, total: int | None) -> None:
        if total:
            filled = min(self.width, self.width * done // total)
            text = f"{self.label} [{'#' * filled}{'-' * (self.width - filled)}] {done}/{total}"
            step = 10 * done // total
        else:
            text, step = f"{self.label} {done} rows", done // 10_000
        if self.tty:
            self.stream.write("\r" + text)
        elif step != self._shown:
            self.stream.write(text + "\n")
            self._printed = text
        self._shown, self._last = step, text
        self.stream.flush()

    def close(self) -> None:
        """End the bar; the final count is always shown."""
        if self.tty:
            self.stream.write("\n")
        elif self._last != self._printed:
            self.stream.write(self._last + "\n")
        self.stream.flush()


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("data", help="prune or export stored rows")
    cmds = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    prune = cmds.add_parser("prune", help="delete rows older than the configured retention")
    add_config_arg(prune)
    prune.add_argument("--url", help="storage URL (default: the configured one)")
    prune.add_argument("--table", help="only this table")
    prune.add_argument("--older-than", type=int, metavar="DAYS", help="maximum age (overrides the configuration)")
    prune.set_defaults(func=_prune)
    export = cmds.add_parser("export", help="copy a table's rows to another store (s3://bucket/prefix...)")
    add_config_arg(export)
    export.add_argument("--url", help="source storage URL (default: the configured one)")
    export.add_argument("--table", required=True, help="table to export (e.g. audit_logs)")
    export.add_argument("--to", dest="target", help="target URL (default: enterprise.persistence.backup_to_s3)")
    export.add_argument("--older-than", type=int, metavar="DAYS", help="only rows older than DAYS")
    export.add_argument("--prune", action="store_true", help="delete the exported rows from the source afterwards")
    export.add_argument("--page-size", type=int, default=1000)
    export.set_defaults(func=_export)


def _retention(args: argparse.Namespace) -> dict[str, int]:
    configured = dict(config_from_args(args).persistence.retention)
    if args.older_than is not None:
        if not args.table:
            raise ConfigError("--older-than", "needs --table")
        return {args.table: args.older_than}
    if args.table:
        if args.table not in configured:
            raise ConfigError("--table", f"no retention configured for {args.table!r}; pass --older-than")
        return {args.table: configured[args.table]}
    if not configured:
        raise ConfigError("enterprise.persistence.retention", "is empty: nothing to prune")
    return configured


def _prune(args: argparse.Namespace) -> int:
    from tframex_asgi.storage.retention import prune

    retention = _retention(args)

    async def run() -> dict[str, int]:
        storage = storage_from_args(args, migrations=True)
        await storage.connect()
        try:
            return await prune(storage, retention)
        finally:
            await storage.close()

    for table, deleted in asyncio.run(run()).items():
        print(f"{table}: deleted {deleted} rows older than {retention[table]} days")
    return 0


def _export(args: argparse.Namespace) -> int:
    from tframex_asgi.storage import open_storage
    from tframex_asgi.storage.retention import age_column, export_table
    from tframex_asgi.storage.validate import utcnow

    backup = config_from_args(args).persistence.backup_to_s3
    target_url = args.target or (backup if isinstance(backup, str) else None)
    if not target_url:
        raise ConfigError("--to", "no target: pass --to s3://bucket/prefix or set persistence.backup_to_s3")
    if args.prune and args.older_than is None:
        raise ConfigError("--prune", "needs --older-than")
    before = utcnow() - timedelta(days=args.older_than) if args.older_than is not None else None
    bar = ProgressBar(args.table)

    async def run() -> tuple[int, int]:
        source = storage_from_args(args, migrations=True)
        target = open_storage(target_url)
        await source.connect()
        try:
            await target.connect()
            copied = await export_table(
                source, target, args.table, before=before, page_size=args.page_size, progress=bar
            )
            pruned = 0
            if args.prune and before is not None:
                pruned = await source.delete_older_than(args.table, age_column(args.table), before)
            return copied, pruned
        finally:
            bar.close()
            await target.close()
            await source.close()

    copied, pruned = asyncio.run(run())
    print(
        f"{args.table}: exported {copied} rows to {target_url.split('?', 1)[0]}"
        + (f", pruned {pruned}" if args.prune else "")
    )
    return 0
