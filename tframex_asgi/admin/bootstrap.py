"""First start: create an admin user and an API key for it, shown once.

``tframex-asgi serve`` calls :func:`bootstrap_admin` at startup (after storage and RBAC are up).
It acts only while the ``users`` table is empty, so it never adds a second admin behind an
operator's back; with several workers starting at once, the unique username lets one win.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tframex_asgi.errors import ConflictError

if TYPE_CHECKING:
    from tframex_asgi.services import Services

__all__ = ["bootstrap_admin"]

logger = logging.getLogger("tframex_asgi.admin")


async def bootstrap_admin(services: Services, *, username: str = "admin") -> tuple[str, str] | None:
    """``(username, api key)`` when an admin was created now, else ``None``."""
    from tframex_asgi.auth.store import get_identity_store
    from tframex_asgi.rbac.engine import get_rbac

    storage = services.storage
    await storage.connect()  # idempotent; lets the CLI and tests call us outside a started stack
    if await storage.count("users") > 0:
        return None
    rbac = get_rbac(services)
    if not rbac.started:  # RBAC layer disabled, or called outside the stack's startup
        await rbac.start()
    identity = get_identity_store(services)
    try:
        user = await identity.create_user(username)
    except ConflictError:
        return None  # another worker bootstrapped first
    user_id = str(user["id"])
    await rbac.grant(user_id, "admin")
    row, key = await identity.create_api_key(user_id, name="bootstrap")
    audit = services.extras.get("audit")
    if audit is not None:
        audit.log_change(
            principal=None, action="user.bootstrap", resource_type="user", resource_id=user_id,
            new_values={"username": username, "roles": ["admin"], "api_key_id": str(row["id"])},
        )  # fmt: skip
    logger.warning("created the first admin user %r with a new API key", username)
    return username, key
