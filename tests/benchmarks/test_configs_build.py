"""Every configuration of the overhead suite builds and answers correctly through the in-process driver.

No timing is asserted: this only keeps ``python -m benchmarks.run`` from silently dropping a
configuration (a factory that broke shows up as a "skipped" row in the report, not as an error).
A peer whose optional package is not installed is skipped, naming the package; the project's own
configurations (baselines and ours) never skip under CI=true. ``ours:full-redis-pg`` uses the test
run's PostgreSQL (a fresh schema) and Redis, so it follows the services policy of tests/conftest.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
from typing import Any

import pytest

from benchmarks.apps import PAYLOAD
from benchmarks.configs import CONFIGS, BenchConfig, BenchContext, Built, Unavailable, by_name
from benchmarks.inproc import base_scope, drain, run_inprocess
from tests.conftest import IN_CI

PEER_GROUPS = ("peer", "peer-stack")
NEEDS_SERVICES = {c.name for c in CONFIGS if c.name.startswith("ours:full-redis-pg")}
MISSING_MODULE = re.compile(r"^(?P<module>[\w.]+) is not importable")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):  # a parent package is missing, or a stub module
        return False


def _unavailable(config: BenchConfig, reason: str) -> None:
    """Skip a peer whose optional package is missing (naming it); fail everything else."""
    missing = MISSING_MODULE.match(reason)
    if config.group in PEER_GROUPS and missing and not _installed(missing["module"]):
        pytest.skip(f"{config.name}: optional package {missing['module']!r} is not installed")
    if config.name == "bare-fastapi" and missing and not IN_CI and not _installed("fastapi"):
        pytest.skip("bare-fastapi: optional package 'fastapi' is not installed")
    pytest.fail(f"{config.name} did not build: {reason}")


async def _one_request(built: Built) -> tuple[int, dict[str, str], bytes]:
    scope = base_scope(built.headers)
    scope["headers"] = list(scope["headers"])
    scope["state"] = {}
    if built.scope_extras is not None:
        scope.update(built.scope_extras())
    seen: dict[str, Any] = {"status": None, "headers": {}, "body": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
            seen["headers"] = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            seen["body"] += message.get("body", b"")

    await built.app(scope, receive, send)
    return seen["status"], seen["headers"], seen["body"]


@pytest.fixture
def ctx(request: pytest.FixtureRequest, tmp_path: Any) -> BenchContext:
    context = BenchContext(workdir=str(tmp_path))
    if request.node.callspec.params["name"] in NEEDS_SERVICES:
        context.redis_url = request.getfixturevalue("redis_url")
        context.pg_dsn = request.getfixturevalue("pg_schema_dsn")
    return context


@pytest.mark.parametrize("name", [c.name for c in CONFIGS])
async def test_configuration_builds_and_answers(name: str, ctx: BenchContext) -> None:
    config = by_name(name)
    try:
        built = await config.build(ctx)
    except Unavailable as exc:
        _unavailable(config, str(exc))
    try:
        status, headers, body = await _one_request(built)
        assert status == 200, f"{name} answered {status}: {body[:300]!r}"
        assert headers.get("content-type", "").startswith("application/json"), headers
        assert json.loads(body) == json.loads(json.dumps(PAYLOAD)), body[:300]
        if built.services is not None:
            await drain(built)  # the driver's drain works on this configuration's services
    finally:
        if built.close is not None:
            await built.close()

    # The driver itself, one round: the configuration is measured, not skipped, and its figures exist.
    configs = [by_name(config.base), config] if config.base != name else [config]
    results, skipped = await run_inprocess(configs, ctx, rounds=1, requests=1, block_ms=1, log=lambda _: None)
    assert name not in skipped, skipped.get(name)
    row = results[name].to_dict()
    assert row["requests_per_round"] >= 1
    assert len(row["per_round_us"]) == len(row["allin_cpu_per_round_us"]) == 1
    assert row["median_us"] > 0 and row["allin_cpu_us"] > 0


def test_every_configuration_is_covered() -> None:
    names = [c.name for c in CONFIGS]
    assert len(names) == len(set(names)), "configuration names must be unique"
    for config in CONFIGS:
        assert config.base in names, f"{config.name}: unknown baseline {config.base!r}"
