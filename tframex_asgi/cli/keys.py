"""``tframex-asgi keys create|list|revoke``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from tframex_asgi.admin.service import AdminService
from tframex_asgi.cli.admin_common import KEY_WARNING, print_rows, resolve_user, run_admin
from tframex_asgi.cli.common import add_config_arg
from tframex_asgi.errors import ConfigError, NotFoundError

__all__ = ["register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("keys", help="create, list and revoke API keys")
    cmds = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = cmds.add_parser("create", help="create an API key for a user (printed once)")
    add_config_arg(create)
    create.add_argument("user", help="user id or username")
    create.add_argument("--name")
    create.add_argument("--scope", action="append", default=[], help="limit the key to this permission (repeatable)")
    create.add_argument("--expires-in-days", type=float)
    create.set_defaults(func=_create)
    listing = cmds.add_parser("list", help="list API keys (never the keys themselves)")
    add_config_arg(listing)
    listing.add_argument("--user", help="only this user's keys (id or username)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_list)
    revoke = cmds.add_parser("revoke", help="revoke an API key by id")
    add_config_arg(revoke)
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_revoke)


def _create(args: argparse.Namespace) -> int:
    days = args.expires_in_days
    if days is not None and not 0 < days <= 3650:
        raise ConfigError("--expires-in-days", "must be more than 0 and at most 3650")
    expires = datetime.now(UTC) + timedelta(days=days) if days is not None else None

    async def work(admin: AdminService) -> tuple[dict[str, Any], str]:
        user = await resolve_user(admin, args.user)
        return await admin.create_key(str(user["id"]), name=args.name, scopes=args.scope, expires_at=expires)

    row, key = run_admin(args, work)
    print(f"created API key {row['id']} (prefix {row['prefix']}) for user {row['user_id']}")
    print(f"\n  {KEY_WARNING}\n\n      {key}\n")
    return 0


def _list(args: argparse.Namespace) -> int:
    async def work(admin: AdminService) -> list[dict[str, Any]]:
        uid = str((await resolve_user(admin, args.user))["id"]) if args.user else None
        return await admin.list_keys(uid)

    columns = ["id", "user_id", "name", "prefix", "scopes", "created_at", "expires_at", "revoked_at"]
    print_rows(run_admin(args, work), columns, args.json)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    if not run_admin(args, lambda admin: admin.revoke_key(args.key_id)):
        raise NotFoundError(f"no API key with id {args.key_id!r}")  # exit 2, like every other error
    print(f"API key {args.key_id} revoked")
    return 0
