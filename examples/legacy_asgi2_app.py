"""A legacy ASGI 2 (double-callable) app, wrapped as is: asgiref adapts it.

Run:  uvicorn examples.legacy_asgi2_app:app
First start: the admin's API key is printed once (users live in ./tframex.db, or $DATABASE_URL).
Then:  curl -H "X-API-Key: $KEY" http://127.0.0.1:8000/
"""

import os
from typing import Any

from tframex_asgi import build_stack


class LegacyApp:
    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        user = self.scope["user"].display_name
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": f"legacy hello, {user}".encode()})


app = build_stack(
    LegacyApp,
    bootstrap_admin=True,  # first start: create an admin and print its API key once
    enable_persistence=True,
    persistence_config={"connection_string": os.environ.get("DATABASE_URL", "sqlite:///./tframex.db")},
    security_config={"auth_providers": ["api_key"], "rbac": {"routes": {"GET /": "agent.view"}}},
)
