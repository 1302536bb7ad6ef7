"""FastAPI: a route guarded by a permission dependency, plus the TFrameX endpoint.

Run:  uvicorn examples.fastapi_app:app
"""

from typing import Any

from fastapi import Depends, FastAPI, Request

from tframex_asgi import EnterpriseMiddleware
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint
from tframex_asgi.rbac import RequirePermission

app = FastAPI(title="TFrameX agents")


@app.get("/reports/usage", dependencies=[Depends(RequirePermission("metrics.view"))])
async def usage_report(request: Request) -> dict[str, Any]:
    return {"requested_by": request.user.display_name}


app.mount("/", TFrameXEndpoint(build_demo_app()))
app.add_middleware(
    EnterpriseMiddleware,
    security_config={"auth_providers": ["api_key"], "rbac": {"routes": {"GET /reports/usage": "metrics.view"}}},
)
