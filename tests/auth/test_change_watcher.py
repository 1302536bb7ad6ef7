"""The change signal on a real SQLite database: a change is seen by another watcher on the next
poll, and a poll that failed (storage unreachable) makes the next good poll count as a change,
since whatever happened meanwhile was not seen."""

from __future__ import annotations

from tframex_asgi.auth.changes import ChangeWatcher, publish_change
from tframex_asgi.clock import SystemClock
from tframex_asgi.storage import open_storage


async def test_watchers_see_changes_and_outages(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/signal.db"
    writer, reader = open_storage(url), open_storage(url)
    await writer.connect()
    await reader.connect()
    seen: list[str] = []

    async def changed() -> None:
        seen.append("changed")

    watcher = ChangeWatcher(reader, changed)
    try:
        assert await watcher.poll() is False  # the baseline
        assert await watcher.poll() is False
        await publish_change(writer, SystemClock(), "api_key.revoke", "api_key", None)
        assert await watcher.poll() is True and seen == ["changed"]
        assert await watcher.poll() is False

        await reader.close()  # the watcher's storage goes away...
        failed = False
        try:
            await watcher.poll()
        except Exception:
            failed = True
        assert failed
        await reader.connect()  # ...and comes back: nothing new was written, yet it counts
        assert await watcher.poll() is True and seen == ["changed", "changed"]
        assert await watcher.poll() is False
    finally:
        await reader.close()
        await writer.close()
