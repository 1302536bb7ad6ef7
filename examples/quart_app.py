"""Quart: wrap ``app.asgi_app``; the stack sees every request before Quart does.

Run:  hypercorn examples.quart_app:app   (or uvicorn)
"""

from quart import Quart, request

from tframex_asgi import EnterpriseMiddleware

app = Quart(__name__)


@app.get("/hello")
async def hello() -> dict[str, str]:
    user = request.scope["user"]
    return {"hello": user.display_name, "request_id": request.scope["tframex"].request_id}


app.asgi_app = EnterpriseMiddleware(  # type: ignore[method-assign]
    app.asgi_app,
    security_config={"auth_providers": ["api_key"], "rbac": {"routes": {"GET /hello": "agent.view"}}},
)
