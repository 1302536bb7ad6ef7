"""Quart: wrap ``app.asgi_app``; the stack sees every request before Quart does.

Run:  hypercorn examples.quart_app:app   (or uvicorn examples.quart_app:app)
First start: the admin's API key is printed once (users live in ./tframex.db, or $DATABASE_URL).
Then:  curl -H "X-API-Key: $KEY" http://127.0.0.1:8000/hello
"""

import os

from quart import Quart, request

from tframex_asgi import EnterpriseMiddleware

app = Quart(__name__)


@app.get("/hello")
async def hello() -> dict[str, str]:
    user = request.scope["user"]
    return {"hello": user.display_name, "request_id": request.scope["tframex"].request_id}


app.asgi_app = EnterpriseMiddleware(  # type: ignore[method-assign]
    app.asgi_app,
    bootstrap_admin=True,  # first start: create an admin and print its API key once
    enable_persistence=True,
    persistence_config={"connection_string": os.environ.get("DATABASE_URL", "sqlite:///./tframex.db")},
    security_config={"auth_providers": ["api_key"], "rbac": {"routes": {"GET /hello": "agent.view"}}},
)
