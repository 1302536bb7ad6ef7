"""A WSGI app (Flask, Django, or plain WSGI like this one), wrapped via a2wsgi.

Run:  uvicorn examples.wsgi_app:app
"""

from collections.abc import Callable, Iterable
from typing import Any

from tframex_asgi import build_stack


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"wsgi hello from {environ['PATH_INFO']}".encode()]


app = build_stack(
    wsgi_app,
    security_config={"auth_providers": ["api_key"], "rbac": {"routes": {"GET /": "agent.view"}}},
)
