"""``tframex-asgi data prune|export``: retention and archival of stored rows.

Progress goes to stderr, results to stdout, so the output can be piped.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta
from typing import Any, TextIO

from tframex_asgi.cli.common import add_config_arg, at_least, config_from_args
from tframex_asgi.cli.migrate import storage_from_args
from tframex_asgi.errors import ConfigError, ConflictError
from tframex_asgi.storage.jsonl import JSONLTarget, is_jsonl_target

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
    # 0 or more: a negative age would reach into the future and take every row, the checkpoint too.
    prune.add_argument(
        "--older-than", type=at_least(0, "days"), metavar="DAYS", help="maximum age (overrides the configuration)"
    )
    prune.set_defaults(func=_prune)
    export = cmds.add_parser(
        "export", help="copy a table's rows to a JSONL file or another store (s3://bucket/prefix, sqlite:///...)"
    )
    add_config_arg(export)
    export.add_argument("--url", help="source storage URL (default: the configured one)")
    export.add_argument("--table", required=True, help="table to export (e.g. audit_logs)")
    export.add_argument(
        "--to", dest="target", help="file.jsonl or a storage URL (default: enterprise.persistence.backup_to_s3)"
    )
    export.add_argument("--older-than", type=at_least(0, "days"), metavar="DAYS", help="only rows older than DAYS")
    export.add_argument("--prune", action="store_true", help="delete the exported rows from the source afterwards")
    export.add_argument("--page-size", type=at_least(1, "rows"), default=1000, help="rows read per page (default 1000)")
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
            done: dict[str, int] = {}
            if "audit_logs" in retention:
                done["audit_logs"] = await _prune_audit(args, storage, retention["audit_logs"])
            rest = {t: d for t, d in retention.items() if t != "audit_logs"}
            return {**done, **(await prune(storage, rest) if rest else {})}
        finally:
            await storage.close()

    for table, deleted in asyncio.run(run()).items():
        print(f"{table}: deleted {deleted} rows older than {retention[table]} days")
    return 0


async def _prune_audit(args: argparse.Namespace, storage: Any, days: int) -> int:
    """Audit rows go with a signed checkpoint, so `audit verify` still passes afterwards."""
    from tframex_asgi.audit.prune import prune_audit
    from tframex_asgi.services import Services
    from tframex_asgi.util import naive_utc

    services = Services(config_from_args(args), storage=storage)
    services.audit_logger  # noqa: B018 - built before startup: its writer and logger start with the services
    await services.startup()
    try:
        return await prune_audit(services, naive_utc() - timedelta(days=days))
    finally:
        await services.shutdown()  # seals the checkpoint's chain with its end record


def _export(args: argparse.Namespace) -> int:
    from tframex_asgi.storage.retention import age_column, export_table
    from tframex_asgi.util import naive_utc

    backup = config_from_args(args).persistence.backup_to_s3
    target_url = args.target or (backup if isinstance(backup, str) else None)
    if not target_url:
        raise ConfigError("--to", "no target: pass --to rows.jsonl or s3://bucket/prefix, or set backup_to_s3")
    target = _target(target_url)
    from tframex_asgi.storage.schema import TABLES

    if args.table not in TABLES:  # before anything is opened
        raise ConfigError("--table", f"unknown table {args.table!r} (tables: {', '.join(TABLES)})")
    if args.prune and args.older_than is None:
        raise ConfigError("--prune", "needs --older-than")
    before = naive_utc() - timedelta(days=args.older_than) if args.older_than is not None else None
    bar = ProgressBar(args.table)

    async def run() -> tuple[int, int]:
        source = storage_from_args(args, migrations=True)
        await source.connect()
        done = False
        try:
            await target.connect()
            try:
                copied = await export_table(
                    source, target, args.table, before=before, page_size=args.page_size, progress=bar
                )
            except ConflictError as exc:
                if exc.code != "foreign_key":
                    raise
                raise ConfigError("--to", _missing_parents(args.table)) from exc
            pruned = 0
            if args.prune and before is not None and args.table == "audit_logs":
                pruned = await _prune_audit(args, source, args.older_than)  # with its checkpoint
            elif args.prune and before is not None:
                pruned = await source.delete_older_than(args.table, age_column(args.table), before)
            done = True
            return copied, pruned
        finally:
            bar.close()
            if isinstance(target, JSONLTarget):
                await target.close(complete=done)
            else:
                await target.close()
            await source.close()

    copied, pruned = asyncio.run(run())
    print(
        f"{args.table}: exported {copied} rows to {target_url.split('?', 1)[0]}"
        + (f", pruned {pruned}" if args.prune else "")
    )
    return 0


def _target(url: str) -> Any:
    """The export target for ``--to``: a JSONL file, or a storage URL (errors name --to)."""
    from tframex_asgi.storage import open_storage

    if is_jsonl_target(url):
        return JSONLTarget(url)
    try:
        return open_storage(url)
    except ConfigError as exc:
        raise ConfigError("--to", f"{exc.reason}; or a file ending in .jsonl") from None


def _missing_parents(table: str) -> str:
    from tframex_asgi.storage.schema import TABLES

    columns = TABLES[table].columns
    parents = sorted({c.references.table for c in columns if c.references and c.references.table != table})
    first = " and ".join(parents) or "the tables it references"
    return (
        f"the target database lacks rows that {table} rows reference ({first}): export "
        f"{', '.join(parents) or 'those tables'} to it first, or export to a .jsonl file or S3, which keep no "
        "foreign keys"
    )
