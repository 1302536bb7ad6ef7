"""FastAPI: a route guarded by a permission dependency, plus the TFrameX endpoint.

Run:  uvicorn examples.fastapi_app:app
First start: the admin's API key is printed once (users live in ./tframex.db, or $DATABASE_URL).
Then:  curl -H "X-API-Key: $KEY" http://127.0.0.1:8000/reports/usage
"""

import os
from typing import Any

from fastapi import Depends, FastAPI, Request

from tframex_asgi import EnterpriseMiddleware, TFrameXEndpoint
from tframex_asgi.demo import build_demo_app
from tframex_asgi.rbac import RequirePermission

app = FastAPI(title="TFrameX agents")


# The dependency is the one declaration: the stack learns this route's permission from it.
@app.get("/reports/usage", dependencies=[Depends(RequirePermission("metrics.view"))])
async def usage_report(request: Request) -> dict[str, Any]:
    return {"requested_by": request.user.display_name}


app.mount("/", TFrameXEndpoint(build_demo_app()))
app.add_middleware(
    EnterpriseMiddleware,
    bootstrap_admin=True,  # first start: create an admin and print its API key once
    enable_persistence=True,
    persistence_config={"connection_string": os.environ.get("DATABASE_URL", "sqlite:///./tframex.db")},
    security_config={"auth_providers": ["api_key"]},
)
