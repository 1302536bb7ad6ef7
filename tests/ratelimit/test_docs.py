"""The examples in docs/rate-limiting.md are valid: the YAML config loads, the snippet runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tframex_asgi.config import EnterpriseConfig

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


def test_python_example_runs_and_prints_what_its_comments_say(capsys: Any) -> None:
    """The page's example (a Starlette app behind the rate limit and body limit layers) as a reader
    runs it: three requests pass, the fourth is 429, an oversized body 413."""
    (code,) = blocks("python")
    assert 'storage="memory://"' in code
    exec(code, {"__name__": "__main__"})  # noqa: S102 - our own docs; it calls asyncio.run itself
    assert capsys.readouterr().out.splitlines() == ["[200, 200, 200, 429]", "413"]
