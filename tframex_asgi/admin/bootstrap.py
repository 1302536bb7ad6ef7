"""First start: create an admin user and an API key for it, shown once.

``tframex-asgi serve`` calls :func:`bootstrap_admin` at startup (after storage and RBAC are up).
It acts only while the ``users`` table is empty, so it never adds a second admin behind an
operator's back; with several workers starting at once, the unique username lets one win.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from tframex_asgi.errors import ConflictError

if TYPE_CHECKING:
    from tframex_asgi.services import Services

__all__ = ["announce_first_admin", "bootstrap_admin"]

logger = logging.getLogger("tframex_asgi.admin")


async def bootstrap_admin(services: Services, *, username: str = "admin") -> tuple[str, str] | None:
    """``(username, api key)`` when an admin was created now, else ``None``."""
    storage = services.storage
    await storage.connect()  # idempotent; lets the CLI and tests call us outside a started stack
    if await storage.count("users") > 0:
        return None
    rbac = services.rbac
    if not rbac.started:  # RBAC layer disabled, or called outside the stack's startup
        await rbac.start()
    identity = services.identity
    try:
        user = await identity.create_user(username)
    except ConflictError:
        return None  # another worker bootstrapped first
    user_id = str(user["id"])
    await rbac.grant(user_id, "admin")
    row, key = await identity.create_api_key(user_id, name="bootstrap")
    audit = services.built("audit_logger")
    if audit is not None:
        audit.log_change(
            principal=None, action="user.bootstrap", resource_type="user", resource_id=user_id,
            new_values={"username": username, "roles": ["admin"], "api_key_id": str(row["id"])},
        )  # fmt: skip
    logger.warning("created the first admin user %r with a new API key", username)
    return username, key


def announce_first_admin(
    services: Services, announce: Callable[[str], object] = print, *, try_url: str | None = None
) -> None:
    """At startup, on first start (no users yet), create the admin and print its key once.

    ``tframex-asgi serve`` and ``build_stack(..., bootstrap_admin=True)`` use it, so an app run
    under its own server can be logged in to from its first start. ``try_url``: a URL for the
    example ``curl`` line.
    """
    if not services.config.security.enabled:
        return
    # Built now, so they start before the hook below runs.
    services.rbac, services.identity  # noqa: B018

    async def hook() -> None:
        created = await bootstrap_admin(services)
        if created is None:
            return
        username, key = created
        header = services.config.security.auth_providers.api_key.header_name
        lines = [
            "",
            f"  Created admin user {username!r}. Its API key is shown ONCE, store it now:",
            "",
            f"      {key}",
            "",
            f"  Send it as the {header} header"
            + (f":  curl -H '{header}: {key}' {try_url}" if try_url else f" ({header}: {key})."),
            "",
        ]
        # flush: under a server the output may be a pipe, and the key must show before requests.
        announce("\n".join(lines))
        import sys

        sys.stdout.flush()

    services.on_startup(hook)
