"""A WSGI app (Flask, Django, or plain WSGI like this one), wrapped via a2wsgi.

Run:  uvicorn examples.wsgi_app:app
First start: the admin's API key is printed once (users live in ./tframex.db, or $DATABASE_URL).
Then:  curl -H "X-API-Key: $KEY" http://127.0.0.1:8000/
"""

import os
from collections.abc import Callable, Iterable
from typing import Any

from tframex_asgi import build_stack


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"wsgi hello from {environ['PATH_INFO']}".encode()]


app = build_stack(
    wsgi_app,
    bootstrap_admin=True,  # first start: create an admin and print its API key once
    enable_persistence=True,
    persistence_config={"connection_string": os.environ.get("DATABASE_URL", "sqlite:///./tframex.db")},
    security_config={"auth_providers": ["api_key"], "rbac": {"routes": {"GET /": "agent.view"}}},
)
