"""Starlette: your own routes next to the TFrameX endpoint, all behind the enterprise stack.

Run:  uvicorn examples.starlette_app:app
First start: the admin's API key is printed once (users live in ./tframex.db, or $DATABASE_URL).
Then:  curl -H "X-API-Key: $KEY" http://127.0.0.1:8000/whoami
"""

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from tframex_asgi import EnterpriseMiddleware, TFrameXEndpoint
from tframex_asgi.demo import build_demo_app


async def whoami(request: Request) -> JSONResponse:
    # request.user / request.auth are set by the authentication layer, as Starlette expects.
    return JSONResponse({"user": request.user.display_name, "permissions": sorted(request.auth.scopes)})


app = Starlette(routes=[Route("/whoami", whoami), Mount("/", TFrameXEndpoint(build_demo_app()))])
app.add_middleware(
    EnterpriseMiddleware,
    bootstrap_admin=True,  # first start: create an admin and print its API key once
    enable_persistence=True,  # users and keys survive a restart
    persistence_config={"connection_string": os.environ.get("DATABASE_URL", "sqlite:///./tframex.db")},
    enable_security=True,
    security_config={
        "auth_providers": ["api_key"],
        # Deny by default: routes of your own need a permission.
        "rbac": {"routes": {"GET /whoami": "agent.view"}},
    },
)
