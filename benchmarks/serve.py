"""The app a benchmark uvicorn server runs: ``uvicorn --factory benchmarks.serve:create_app``.

The configuration is named by ``TFX_BENCH_CONFIG``; it is built inside the server's event loop
at lifespan startup (database pools and Redis connections belong to that loop), then its
credentials (or the reason it cannot run) are written as JSON to ``TFX_BENCH_READY``.

With ``TFX_BENCH_STATS=1`` the server also answers ``GET /__bench/stats`` with its own memory
figures (``benchmarks.memstats``), for ``benchmarks.bench_rss``; the path check is installed only
then, so the other benchmarks measure the app alone.
"""

from __future__ import annotations

import json
import os
from typing import Any

from benchmarks.configs import BenchContext, Built, Unavailable, by_name

__all__ = ["create_app"]


def _write(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


class BenchServer:
    def __init__(self) -> None:
        self.config = by_name(os.environ["TFX_BENCH_CONFIG"])
        self.ctx = BenchContext.from_env(os.environ)
        self.ready_file = os.environ["TFX_BENCH_READY"]
        self.built: Built | None = None
        self.app: Any = None
        self.stats = os.environ.get("TFX_BENCH_STATS") == "1"
        if self.stats:
            from benchmarks.memstats import start

            start()

    async def _startup(self) -> None:
        try:
            built = await self.config.build(self.ctx)
        except Unavailable as exc:
            _write(self.ready_file, {"error": str(exc)})
            raise
        except Exception as exc:
            _write(self.ready_file, {"error": f"failed: {type(exc).__name__}: {exc}"})
            raise
        self.built = built
        app = built.app
        config = getattr(app, "config", None)
        if config is not None and config.server.gc_freeze:
            # What the stack's own lifespan does with server.gc_freeze (this server runs its startup).
            from tframex_asgi.stack import freeze_startup_objects

            freeze_startup_objects()
        if built.scope_extras is not None:
            inner, extras = app, built.scope_extras

            async def inject(scope: dict[str, Any], receive: Any, send: Any) -> None:
                if scope["type"] == "http":
                    scope.update(extras())
                await inner(scope, receive, send)

            app = inject
        self.app = app
        _write(
            self.ready_file,
            {"headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in built.headers], "pid": os.getpid()},
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    try:
                        await self._startup()
                    except Exception as exc:
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self.built is not None and self.built.close is not None:
                        await self.built.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if self.stats and scope["type"] == "http" and scope["path"] == "/__bench/stats":
            from benchmarks.memstats import respond

            await respond(scope, send)
            return
        await self.app(scope, receive, send)


def create_app() -> BenchServer:
    return BenchServer()
