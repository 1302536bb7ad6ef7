"""The TFrameX endpoint behind the stack, served by a real uvicorn in the disconnect tests.

``create()`` (uvicorn --factory) reads the SQLite URL and spill path from the environment. The
offline LLM streams one word every 20 ms, so a client can leave in the middle of an answer.
"""

from __future__ import annotations

import os
from typing import Any

from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint
from tframex_asgi.llm import OfflineLLM
from tframex_asgi.stack import build_stack

TOKEN_BUDGET = 100_000


def create() -> Any:
    return build_stack(
        TFrameXEndpoint(build_demo_app(OfflineLLM(chunk_delay=0.02))),
        enable_persistence=True,
        persistence_config={
            "connection_string": os.environ["STREAM_TEST_DB"],
            "queue": {"spill_path": os.environ["STREAM_TEST_SPILL"], "flush_interval": 0.02},
        },
        enable_security=True,
        security_config={
            "require_auth": False,
            "rbac": {"enabled": False},
            "rate_limiting": {"enabled": True, "default": "100000/minute", "tokens": f"{TOKEN_BUDGET}/hour"},
            "audit": {"level": "full"},
        },
    )
