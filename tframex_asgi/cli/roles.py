"""``tframex-asgi roles grant|revoke|list|create``."""

from __future__ import annotations

import argparse
from typing import Any

from tframex_asgi.admin.service import AdminService
from tframex_asgi.cli.admin_common import print_rows, resolve_user, run_admin
from tframex_asgi.cli.common import add_config_arg

__all__ = ["register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("roles", help="grant and revoke roles, list and create roles")
    cmds = parser.add_subparsers(dest="roles_command", metavar="ACTION", required=True)
    for name in ("grant", "revoke"):
        cmd = cmds.add_parser(name, help=f"{name} a role (user by id or username)")
        add_config_arg(cmd)
        cmd.add_argument("user")
        cmd.add_argument("role")
        cmd.set_defaults(func=_change, grant=name == "grant")
    listing = cmds.add_parser("list", help="list roles and their permissions")
    add_config_arg(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_list)
    create = cmds.add_parser("create", help="create a custom role")
    add_config_arg(create)
    create.add_argument("name")
    create.add_argument("--permission", action="append", default=[], help="permission (repeatable)")
    create.add_argument("--inherits", action="append", default=[], help="parent role (repeatable)")
    create.add_argument("--description")
    create.set_defaults(func=_create)


def _change(args: argparse.Namespace) -> int:
    async def work(admin: AdminService) -> tuple[str, bool]:
        user = await resolve_user(admin, args.user)
        uid = str(user["id"])
        changed = await (admin.grant(uid, args.role) if args.grant else admin.revoke(uid, args.role))
        return str(user["username"]), changed

    username, changed = run_admin(args, work)
    verb = "granted to" if args.grant else "revoked from"
    print(f"role {args.role!r} {verb} {username!r}" if changed else f"nothing to do: {username!r} unchanged")
    return 0


def _list(args: argparse.Namespace) -> int:
    async def work(admin: AdminService) -> list[dict[str, Any]]:
        return admin.rbac.list_roles()

    print_rows(run_admin(args, work), ["name", "permissions", "inherits", "builtin"], args.json)
    return 0


def _create(args: argparse.Namespace) -> int:
    async def work(admin: AdminService) -> dict[str, Any]:
        return await admin.create_role(args.name, args.permission, args.inherits, args.description)

    role = run_admin(args, work)
    print(f"created role {role['name']!r}: {', '.join(role['effective_permissions']) or '-'}")
    return 0
