"""``tframex-asgi audit tail|verify|export``: read, check and archive the audit log.

All three read the database named by ``--config`` (``enterprise.persistence``). ``verify``
exits 1 and prints the first bad row when the hash chain shows an edit, deletion, reordering
or truncation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import deque
from typing import Any

from tframex_asgi.cli.common import add_config_arg, at_least, config_from_args
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.errors import ConfigError

__all__ = ["format_row", "register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("audit", help="tail, verify or export the audit log")
    commands = parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    tail = commands.add_parser("tail", help="show the newest audit rows")
    add_config_arg(tail)
    tail.add_argument("-n", "--lines", type=at_least(1), default=20, help="how many rows (default 20)")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new rows")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    tail.set_defaults(func=_tail)

    verify = commands.add_parser("verify", help="check the hash chains (exit 1 on tampering)")
    add_config_arg(verify)
    verify.add_argument("--file", metavar="JSONL", help="verify an export instead of the database")
    verify.add_argument("--from", dest="source", metavar="S3_URL", help="verify the backups under s3://bucket/prefix")
    verify.add_argument(
        "--strict",
        action="store_true",
        help="also fail on open chains (no end record: a crash, a running worker or a cut tail) and on unchained rows",
    )
    verify.set_defaults(func=_verify)

    export = commands.add_parser("export", help="export the audit log to a JSONL file or S3")
    add_config_arg(export)
    export.add_argument("--to", required=True, metavar="DEST", help="file.jsonl or s3://bucket/prefix")
    export.add_argument("--since", help="only rows at or after (ISO 8601 or Unix seconds)")
    export.add_argument("--until", help="only rows at or before (ISO 8601 or Unix seconds)")
    export.add_argument("--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL or AWS)")
    export.set_defaults(func=_export)


def _safe(value: Any) -> str:
    # Rows are escaped when written; this keeps a hand-edited row from driving the terminal.
    text = "-" if value is None or value == "" else str(value)
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def format_row(row: dict[str, Any]) -> str:
    """One line per row: time, status, reason, action, user, ip, request id."""
    values = row.get("new_values") if isinstance(row.get("new_values"), dict) else {}
    actor = values.get("actor") if isinstance(values, dict) else None
    user = actor.get("username") if isinstance(actor, dict) else row.get("user_id")
    action = _safe(row.get("action"))
    if row.get("resource_type") not in (None, "http") and row.get("resource_id"):
        action += f" {_safe(row.get('resource_type'))}:{_safe(row.get('resource_id'))}"
    return "  ".join(
        [
            _safe(row.get("created_at")),
            f"{_safe(row.get('status')):8}",
            f"{_safe(row.get('reason')):22}",
            action,
            f"user={_safe(user)}",
            f"ip={_safe(row.get('ip_address'))}",
            f"req={_safe(row.get('request_id'))}",
        ]
    )


def _storage_of(config: EnterpriseConfig) -> Any:
    from tframex_asgi.storage import open_storage

    if not config.persistence.enabled:
        raise ConfigError("enterprise.persistence.enabled", "is off: audit rows were never stored in a database")
    return open_storage(config.persistence.url, config.persistence)


def _key(config: EnterpriseConfig) -> bytes | None:
    key = config.security.audit.hmac_key
    return key.encode() if key else None


def _tail(args: argparse.Namespace) -> int:
    from tframex_asgi.audit.redact import Redactor
    from tframex_asgi.audit.routes import public_row, query_audit

    config = config_from_args(args)
    redactor = Redactor(config.security.audit.redact_fields)

    def show(row: dict[str, Any]) -> None:
        data = public_row(row, redactor)
        print(json.dumps(data, separators=(",", ":")) if args.json else format_row(data), flush=True)

    async def run() -> None:
        async with _storage_of(config) as storage:
            lines = max(args.lines, 0)
            # --follow polls the newest `window` rows: every row of that window is "seen" from the
            # start, or the first poll would replay the older ones that -n did not show. The same
            # keyset read as GET /audit: the newest rows by index, whatever the table's size.
            window = max(lines, 500) if args.follow else lines
            rows = await query_audit(storage, {}, limit=window) if window > 0 else []
            seen: deque[str] = deque((str(row["id"]) for row in reversed(rows)), maxlen=10_000)
            for row in reversed(rows[:lines]):  # oldest first, newest last, as tail does
                show(row)
            while args.follow:
                await asyncio.sleep(args.interval)
                fresh = await query_audit(storage, {}, limit=500)
                known = set(seen)
                for row in reversed(fresh):
                    if str(row["id"]) not in known:
                        seen.append(str(row["id"]))
                        show(row)

    asyncio.run(run())
    return 0


def _verify(args: argparse.Namespace) -> int:
    from tframex_asgi.audit.chain import VerifyReport, verify_rows
    from tframex_asgi.audit.export import read_jsonl, verify_storage

    config = config_from_args(args)
    key = _key(config)
    report: VerifyReport
    if getattr(args, "source", None):
        return _verify_backups(args.source, key, args.strict)
    if args.file:
        report = verify_rows(read_jsonl(args.file), key)
    else:

        async def run() -> VerifyReport:
            async with _storage_of(config) as storage:
                return await verify_storage(storage, key)

        report = asyncio.run(run())
    print(
        f"{report.rows} rows, {report.chains} chains ({report.closed_chains} closed, "
        f"{len(report.open_chains)} open), {report.unchained_rows} unchained rows"
    )
    if report.problems:
        print(f"TAMPERED: first bad row: {report.problems[0]}", file=sys.stderr)
        for problem in report.problems[1:]:
            print(f"  also: {problem}", file=sys.stderr)
        return 1
    if args.strict and (report.open_chains or report.unchained_rows):
        if report.open_chains:
            print(f"open chains (no end record): {', '.join(report.open_chains)}", file=sys.stderr)
        if report.unchained_rows:
            print(f"{report.unchained_rows} rows carry no chain (not tamper-evident)", file=sys.stderr)
        return 1
    print("OK: every chain is intact")
    return 0


def _verify_backups(url: str, key: bytes | None, strict: bool) -> int:
    from tframex_asgi.audit.backup import verify_backups

    report = asyncio.run(verify_backups(url, key))
    audit = report.audit
    rows = f", {audit.rows} audit rows in {audit.chains} chains" if audit is not None else ""
    print(f"{report.digests} digests{rows}{'' if report.signed else ' (UNSIGNED: no hmac_key)'}")
    problems = list(report.problems) + ([str(p) for p in audit.problems] if audit is not None else [])
    if problems:
        print(f"TAMPERED: {problems[0]}", file=sys.stderr)
        for problem in problems[1:]:
            print(f"  also: {problem}", file=sys.stderr)
        return 1
    if strict and not report.signed:
        print("the digests are not signed (set security.audit.hmac_key)", file=sys.stderr)
        return 1
    print("OK: every digest, archive and chain is intact")
    return 0


def _export(args: argparse.Namespace) -> int:
    from tframex_asgi.audit.export import export_rows
    from tframex_asgi.audit.redact import Redactor
    from tframex_asgi.audit.routes import parse_time

    config = config_from_args(args)
    since = parse_time(args.since, "--since") if args.since else None
    until = parse_time(args.until, "--until") if args.until else None

    async def run() -> tuple[int, str]:
        async with _storage_of(config) as storage:
            return await export_rows(
                storage,
                args.to,
                redactor=Redactor(config.security.audit.redact_fields),
                since=since,
                until=until,
                endpoint_url=args.endpoint_url,
            )

    count, where = asyncio.run(run())
    print(f"exported {count} rows to {where}")
    return 0
