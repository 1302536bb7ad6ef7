"""The examples in docs/rate-limiting.md are valid: the YAML config loads, the snippet runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.asgi_harness import request
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.types import Receive, Scope, Send

DOC = Path(__file__).parents[2] / "docs" / "rate-limiting.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)


def test_yaml_example_is_a_valid_config() -> None:
    text = blocks("yaml")[0]
    cfg = EnterpriseConfig.from_mapping(yaml.safe_load(text)["enterprise"])
    rl = cfg.security.rate_limiting
    assert rl.enabled and rl.tiers["premium"] == "1000/minute" and rl.tokens == "200000/hour"
    assert "POST /agents/{name}/run" in rl.routes


def test_lease_example_is_a_valid_config() -> None:
    (text,) = [b for b in blocks("yaml") if "lease:" in b]
    rl = EnterpriseConfig.from_mapping(yaml.safe_load(text)["enterprise"]).security.rate_limiting
    assert rl.lease == 20 and rl.strategy == "fixed-window"


async def test_python_example_runs() -> None:
    (code,) = blocks("python")
    code = code.replace("redis://localhost:6379/0", "memory://")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    namespace: dict[str, Any] = {"app": app}
    exec(code, namespace)
    resp = await request(namespace["app"], "GET", "/")
    assert resp.status == 204 and resp.headers["ratelimit-policy"] == '"default";q=60;w=60'
