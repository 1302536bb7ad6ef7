"""``tframex-asgi users create|list|disable|enable``."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from tframex_asgi.admin.service import AdminService
from tframex_asgi.cli.admin_common import KEY_WARNING, print_rows, resolve_user, run_admin
from tframex_asgi.cli.common import add_config_arg

__all__ = ["register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("users", help="create, list, disable and enable users")
    cmds = parser.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    create = cmds.add_parser("create", help="create a user")
    add_config_arg(create)
    create.add_argument("username")
    create.add_argument("--email")
    create.add_argument("--role", action="append", default=[], help="grant this role (repeatable)")
    pw = create.add_mutually_exclusive_group()
    pw.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    pw.add_argument("--password-prompt", action="store_true", help="ask for the password on the terminal")
    create.add_argument("--api-key", action="store_true", help="also create an API key and print it once")
    create.set_defaults(func=_create)
    listing = cmds.add_parser("list", help="list users with their roles")
    add_config_arg(listing)
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_list)
    for name, active in (("disable", False), ("enable", True)):
        cmd = cmds.add_parser(name, help=f"{name} a user (by id or username)")
        add_config_arg(cmd)
        cmd.add_argument("user")
        cmd.set_defaults(func=_set_active, active=active)


def _password(args: argparse.Namespace) -> str | None:
    # Never from argv: command lines end up in shell history and `ps`.
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n") or None
    if args.password_prompt:
        return getpass.getpass("Password: ") or None
    return None


def _create(args: argparse.Namespace) -> int:
    password = _password(args)

    async def work(admin: AdminService) -> tuple[dict[str, Any], str | None]:
        user = await admin.create_user(args.username, email=args.email, password=password, roles=args.role)
        key = (await admin.create_key(str(user["id"]), name="cli"))[1] if args.api_key else None
        return user, key

    user, key = run_admin(args, work)
    print(f"created user {user['username']!r} (id {user['id']}, roles: {', '.join(user['roles']) or '-'})")
    if key:
        print(f"\n  {KEY_WARNING}\n\n      {key}\n")
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = run_admin(args, lambda admin: admin.list_users(args.limit, args.offset))
    print_rows(rows, ["id", "username", "email", "is_active", "roles"], args.json)
    return 0


def _set_active(args: argparse.Namespace) -> int:
    async def work(admin: AdminService) -> dict[str, Any]:
        user = await resolve_user(admin, args.user)
        return await admin.set_active(str(user["id"]), args.active)

    user = run_admin(args, work)
    print(f"user {user['username']!r} is now {'enabled' if args.active else 'disabled'}")
    return 0
