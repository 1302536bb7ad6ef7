"""``server.gc_freeze``: what lifespan startup built leaves the collector's full passes (gc.freeze),
on under ``tframex-asgi serve``'s defaults, off in a user's own app unless asked for."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tests.asgi_harness import Lifespan, request
from tframex_asgi import build_stack
from tframex_asgi.defaults import serve_config
from tframex_asgi.errors import ConfigError


async def hello(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError("no lifespan here")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the suite runs with every object collectable, as before


async def started(stack) -> int:
    life = Lifespan(stack)
    assert (await life.startup())["type"] == "lifespan.startup.complete"
    frozen = gc.get_freeze_count()
    assert (await request(stack, "GET", "/")).status == 200
    assert (await life.shutdown())["type"] == "lifespan.shutdown.complete"
    return frozen


async def test_off_by_default_in_your_own_app() -> None:
    assert await started(build_stack(hello, enable_security=False)) == 0


async def test_on_it_freezes_every_object_alive_after_startup() -> None:
    stack = build_stack(hello, enable_security=False, server_config={"gc_freeze": True})
    class_alive_at_startup = type(stack.services)
    frozen = await started(stack)
    assert frozen > 1000  # modules, classes and functions: everything startup left alive
    # Frozen objects are out of the generations a collection walks.
    assert not any(o is class_alive_at_startup for o in gc.get_objects())
    # Objects made after startup are still collected: a cycle made now is freed.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1


async def test_serve_defaults_turn_it_on_and_a_file_can_turn_it_off(tmp_path) -> None:
    assert serve_config(None).server.gc_freeze is True
    off = tmp_path / "enterprise.yaml"
    off.write_text("enterprise:\n  server:\n    gc_freeze: false\n")
    assert serve_config(off).server.gc_freeze is False
    unrelated = tmp_path / "limits.yaml"
    unrelated.write_text("enterprise:\n  security:\n    rate_limiting:\n      default: 10/minute\n")
    assert serve_config(unrelated).server.gc_freeze is True


async def test_serve_app_freezes_at_its_lifespan(tmp_path, monkeypatch) -> None:
    """The app `tframex-asgi serve` hands uvicorn, on its embedded defaults (SQLite in the cwd)."""
    import argparse

    from tframex_asgi.cli.serve import build_server_app

    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(config=None, app=None, host="127.0.0.1", port=8000)
    stack = build_server_app(args, announce=lambda *a, **k: None)
    life = Lifespan(stack)
    assert (await life.startup())["type"] == "lifespan.startup.complete"
    try:
        assert gc.get_freeze_count() > 1000
    finally:
        assert (await life.shutdown())["type"] == "lifespan.shutdown.complete"


async def test_the_seed_style_app_takes_server_config() -> None:
    """``tframex_asgi.TFrameXApp(..., server_config=...)``: the ``server:`` section for the app
    that configures itself with the seed's keywords (and is served as it is)."""
    from tframex_asgi import TFrameXApp

    app = TFrameXApp(enable_security=False, server_config={"gc_freeze": True, "server_timing": True})
    assert app.enterprise_config.server.gc_freeze is True
    life = Lifespan(app)
    assert (await life.startup())["type"] == "lifespan.startup.complete"
    try:
        assert gc.get_freeze_count() > 1000
        answered = await request(app, "GET", "/agents")
        assert answered.status == 200 and "server-timing" in answered.headers
    finally:
        assert (await life.shutdown())["type"] == "lifespan.shutdown.complete"
    with pytest.raises(ConfigError, match=r"server_config\.gc_freez"):
        TFrameXApp(server_config={"gc_freez": True})
