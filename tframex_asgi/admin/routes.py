"""HTTP admin API: ``/admin/users``, ``/admin/roles``, ``/admin/api-keys`` (JSON in, JSON out).

The authorization layer already requires ``user.manage`` / ``role.manage`` for these templates
(see :data:`tframex_asgi.rbac.permissions.ENDPOINT_ROUTES`); each handler checks again, so the
routes stay closed when mounted in an app without that layer, and the escalation rules of
:class:`~tframex_asgi.admin.service.AdminService` apply on top.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tframex_asgi.admin.service import AdminService, get_admin
from tframex_asgi.context import get_state
from tframex_asgi.errors import NotFoundError, TFrameXASGIError, ValidationError
from tframex_asgi.jsonbody import read_json_object
from tframex_asgi.rbac.guard import missing_permissions
from tframex_asgi.timefmt import json_default

if TYPE_CHECKING:
    from tframex_asgi.services import Services

__all__ = ["admin_routes"]

Handler = Callable[[Request, AdminService], Awaitable[Response]]
_NO_STORE = {"Cache-Control": "no-store"}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(json.loads(json.dumps(data, default=json_default)), status_code=status, headers=headers)


def _error(exc: TFrameXASGIError) -> JSONResponse:
    return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status)


async def _body(request: Request) -> dict[str, Any]:
    return await read_json_object(request)  # the shared parser: every bad body is a 400


def _only(body: dict[str, Any], *known: str) -> dict[str, Any]:
    """``body`` when it has no field but ``known``: a misspelt or unsupported field (say
    ``is_superuser``) is a 400 naming it, never silently ignored."""
    for key in body:
        if key not in known:
            raise ValidationError(f"unknown field {key!r} (known fields: {', '.join(sorted(known))})")
    return body


def _str(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{key!r} must be a non-empty string")
    return value


def _strings(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"{key!r} must be a list of strings")
    return value


def _int(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        raise ValidationError(f"query parameter {name!r} must be an integer") from None
    if not 0 <= value <= high:
        raise ValidationError(f"query parameter {name!r} must be between 0 and {high}")
    return value


def _expiry(body: dict[str, Any]) -> datetime | None:
    days, at = body.get("expires_in_days"), body.get("expires_at")
    if days is not None and at is not None:
        raise ValidationError("send 'expires_in_days' or 'expires_at', not both")
    if days is not None:
        if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 3650:
            raise ValidationError("'expires_in_days' must be a number of days between 0 and 3650")
        return datetime.now(UTC) + timedelta(days=days)
    if at is not None:
        if not isinstance(at, str):
            raise ValidationError("'expires_at' must be an ISO 8601 timestamp string")
        try:
            parsed = datetime.fromisoformat(at)
        except ValueError:
            raise ValidationError("'expires_at' must be an ISO 8601 timestamp") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


# -- users --------------------------------------------------------------------------------


async def list_users(request: Request, admin: AdminService) -> Response:
    limit, offset = _int(request, "limit", 100, 1000), _int(request, "offset", 0, 10_000_000)
    return _json({"users": await admin.list_users(limit, offset), "limit": limit, "offset": offset})


async def create_user(request: Request, admin: AdminService) -> Response:
    body = _only(await _body(request), "username", "email", "password", "roles")
    user = await admin.create_user(
        str(_str(body, "username", required=True)), email=_str(body, "email"), password=_str(body, "password"),
        roles=_strings(body, "roles"), by=request.scope.get("user"), scope=request.scope,
    )  # fmt: skip
    return _json({"user": user}, 201)


async def get_user(request: Request, admin: AdminService) -> Response:
    return _json({"user": await admin.get_user(request.path_params["id"])})


async def patch_user(request: Request, admin: AdminService) -> Response:
    body = _only(await _body(request), "is_active")
    if not isinstance(body.get("is_active"), bool):
        raise ValidationError("'is_active' must be true or false")
    user = await admin.set_active(request.path_params["id"], body["is_active"], by=request.scope.get("user"),
                                  scope=request.scope)  # fmt: skip
    return _json({"user": user})


async def user_roles(request: Request, admin: AdminService) -> Response:
    user = await admin.get_user(request.path_params["id"])
    return _json({"user_id": user["id"], "roles": user["roles"]})


async def grant_role(request: Request, admin: AdminService) -> Response:
    role = str(_str(_only(await _body(request), "role"), "role", required=True))
    created = await admin.grant(request.path_params["id"], role, by=request.scope.get("user"), scope=request.scope)
    return _json({"user_id": request.path_params["id"], "role": role, "granted": created}, 201 if created else 200)


async def revoke_role(request: Request, admin: AdminService) -> Response:
    uid, role = request.path_params["id"], request.path_params["role"]
    if not await admin.revoke(uid, role, by=request.scope.get("user"), scope=request.scope):
        raise NotFoundError("the user does not hold this role")
    return Response(status_code=204)


# -- roles --------------------------------------------------------------------------------


async def list_roles(request: Request, admin: AdminService) -> Response:
    return _json({"roles": admin.rbac.list_roles()})


async def create_role(request: Request, admin: AdminService) -> Response:
    body = _only(await _body(request), "name", "permissions", "inherits", "description")
    role = await admin.create_role(
        str(_str(body, "name", required=True)), _strings(body, "permissions"), _strings(body, "inherits"),
        _str(body, "description"), by=request.scope.get("user"), scope=request.scope,
    )  # fmt: skip
    return _json({"role": role}, 201)


async def delete_role(request: Request, admin: AdminService) -> Response:
    if not await admin.delete_role(request.path_params["name"], by=request.scope.get("user"), scope=request.scope):
        raise NotFoundError("no such role")
    return Response(status_code=204)


# -- API keys -----------------------------------------------------------------------------


async def list_keys(request: Request, admin: AdminService) -> Response:
    return _json({"api_keys": await admin.list_keys(request.query_params.get("user_id"))})


async def create_key(request: Request, admin: AdminService) -> Response:
    body = _only(await _body(request), "user_id", "name", "scopes", "expires_in_days", "expires_at")
    row, key = await admin.create_key(
        _str(body, "user_id"), name=_str(body, "name"), scopes=_strings(body, "scopes"), expires_at=_expiry(body),
        by=request.scope.get("user"), scope=request.scope,
    )  # fmt: skip
    # The only time the key is ever shown: keep it out of caches.
    return _json({"api_key": row, "key": key, "warning": "store this key now: it is not shown again"}, 201, _NO_STORE)


async def revoke_key(request: Request, admin: AdminService) -> Response:
    if not await admin.revoke_key(request.path_params["id"], by=request.scope.get("user"), scope=request.scope):
        raise NotFoundError("no such API key")
    return Response(status_code=204)


# -- routing ------------------------------------------------------------------------------


def admin_routes(services: Services) -> list[BaseRoute]:
    """Starlette routes of the admin API (the authorization layer adds them to ``services.routes``)."""

    def route(path: str, method: str, permission: str, handler: Handler) -> Route:
        async def endpoint(request: Request) -> Response:
            get_state(request.scope)["route"] = path
            missing = missing_permissions(request.scope, [permission])
            if missing:
                unauthenticated = not getattr(request.scope.get("user"), "is_authenticated", False)
                status, code = (401, "unauthenticated") if unauthenticated else (403, "forbidden")
                return JSONResponse({"error": {"code": code, "message": f"missing permission {permission}"}}, status)
            try:
                return await handler(request, get_admin(services))
            except TFrameXASGIError as exc:
                if exc.status == 403:
                    get_state(request.scope)["audit_reason"] = "forbidden"
                return _error(exc)

        return Route(path, endpoint, methods=[method])

    return [
        route("/admin/users", "GET", "user.manage", list_users),
        route("/admin/users", "POST", "user.manage", create_user),
        route("/admin/users/{id}", "GET", "user.manage", get_user),
        route("/admin/users/{id}", "PATCH", "user.manage", patch_user),
        route("/admin/users/{id}/roles", "GET", "user.manage", user_roles),
        route("/admin/users/{id}/roles", "POST", "role.manage", grant_role),
        route("/admin/users/{id}/roles/{role}", "DELETE", "role.manage", revoke_role),
        route("/admin/roles", "GET", "role.manage", list_roles),
        route("/admin/roles", "POST", "role.manage", create_role),
        route("/admin/roles/{name}", "DELETE", "role.manage", delete_role),
        route("/admin/api-keys", "GET", "user.manage", list_keys),
        route("/admin/api-keys", "POST", "user.manage", create_key),
        route("/admin/api-keys/{id}", "DELETE", "user.manage", revoke_key),
    ]
