"""The py-spy ledger's attribution of samples to components, and its report section."""

from __future__ import annotations

from benchmarks.bench_ledger import component_of, ledger, section

UVICORN = "run_asgi (uvicorn/protocols/http/httptools_impl.py:409)"
OURS = "__call__ (tframex_asgi/ratelimit/middleware.py:51)"


def test_library_frames_count_for_the_component_that_called_them() -> None:
    redis_write = [
        UVICORN,
        OURS,
        "run (tframex_asgi/ratelimit/redis_batch.py:64)",
        "writelines (asyncio/streams.py:346)",
    ]
    assert component_of(redis_write) == "rate limit: Redis client"
    signing = ["_drain_soon (tframex_asgi/audit/logger.py:131)", "digest (tframex_asgi/audit/chain.py:70)"]
    assert component_of([*signing, "new (hmac.py:184)"]) == "audit rows: build, redact, sign"
    assert component_of([UVICORN, OURS]) == "rate limit layer"
    assert component_of([UVICORN, "send (uvicorn/protocols/http/httptools_impl.py:522)"]) == "server (uvicorn)"
    assert component_of(["run (asyncio/runners.py:118)"]) == "event loop (asyncio / uvloop)"
    assert component_of(["<module> (frozen)"]) == "other (interpreter, unattributed)"


def test_every_sample_of_the_sqlite_thread_is_the_writer_s() -> None:
    thread = ["_bootstrap (threading.py:995)", "_connection_worker_thread (aiosqlite/core.py:60)"]
    assert component_of([*thread, "<lambda> (tframex_asgi/storage/sqlite.py:141)"]) == "SQLite writer thread"
    # aiosqlite on the event loop's thread is the storage's own work.
    assert component_of([UVICORN, "_execute (aiosqlite/core.py:130)"]) == "storage: check + encode rows, write queue"


def test_ledger_counts_samples_and_the_section_turns_them_into_us_per_request() -> None:
    raw = f"{UVICORN};{OURS} 30\n{UVICORN} 70\n\n"
    counts, total = ledger(raw)
    assert total == 100 and counts == {"rate limit layer": 30, "server (uvicorn)": 70}
    data = {
        "seconds": 8,
        "rate": 250,
        "stack": {"loop": "uvloop", "http": "httptools"},
        "configs": {"bare": {"rps": 20_000.0, "samples": 100, "us_per_request": {"server (uvicorn)": 20.0}}},
    }
    text = "\n".join(section(data, "reading"))
    assert "| server (uvicorn) | 20.0 |" in text and "| **server CPU per request** | **20.0** |" in text
    assert "| wall per request (1e6 / req/s) | 50.0 |" in text and text.rstrip().endswith("reading")
    assert section(None) == [] and section({"configs": {}}) == []
