"""A client that disconnects in the middle of an SSE answer, against a real uvicorn.

The request is audited with reason ``cancelled``; the run record says ``cancelled`` with a plain
message, the usage of what was produced and the output sent so far; the conversation keeps the
turn as far as it went; the token budget is charged what was produced, not the whole answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.endpoint.stream_server import TOKEN_BUDGET
from tframex_asgi.storage import open_storage

WORDS = 200


def start_server(tmp_path: Path, url: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "STREAM_TEST_DB": url,
        "STREAM_TEST_SPILL": str(tmp_path / "spill.jsonl"),
        "PYTHONPATH": os.getcwd(),
    }
    args = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--lifespan", "on"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "tests.endpoint.stream_server:create", *args],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base, log
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start:\n" + log.read_text())


def tokens_left(response: httpx.Response) -> int:
    found = re.search(r'"tokens";r=(\d+)', response.headers["ratelimit"])
    assert found, response.headers["ratelimit"]
    return int(found.group(1))


async def test_client_disconnect_mid_stream_is_recorded_as_cancelled(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/stream.db"
    proc, base, log = start_server(tmp_path, url)
    text = " ".join(f"w{i}" for i in range(WORDS))
    received: list[str] = []
    try:
        run = {"input": text, "stream": True}
        async with (
            httpx.AsyncClient(base_url=base, timeout=30) as client,
            client.stream("POST", "/agents/assistant/run", json=run) as resp,
        ):
            assert resp.status_code == 200
            request_id = resp.headers["x-request-id"]
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    received.append(json.loads(line[6:])["content"])
                    if len(received) == 5:
                        break  # leave mid-answer: closing the response drops the connection
        assert len(received) == 5
        # The OpenAI-compatible stream, left the same way.
        chat = {"model": "assistant", "stream": True, "messages": [{"role": "user", "content": "chat " + text}]}
        async with (
            httpx.AsyncClient(base_url=base, timeout=30) as client,
            client.stream("POST", "/v1/chat/completions", json=chat) as resp,
        ):
            assert resp.status_code == 200
            chat_request_id = resp.headers["x-request-id"]
            seen = 0
            async for line in resp.aiter_lines():
                seen += line.startswith("data: ")
                if seen == 5:
                    break
        await asyncio.sleep(0.5)  # the server notices, cancels the run and records it
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            after = await client.post("/agents/assistant/run", json={"input": "hi"})
            assert after.status_code == 200, after.text
    finally:
        proc.send_signal(signal.SIGTERM)  # lifespan shutdown flushes the write queue
        proc.wait(timeout=30)
    server_log = log.read_text()
    assert "Traceback" not in server_log, server_log

    async with open_storage(url) as db:
        (row,) = await db.read("audit_logs", {"request_id": request_id})
        assert row["reason"] == "cancelled" and row["new_values"]["status_code"] == 200, row

        (run,) = await db.read("agent_executions", {"input_message": text})
        assert run["status"] == "cancelled"
        assert run["error_message"] == "cancelled: the client disconnected before the run finished"
        output = run["output_message"]
        # What was produced: at least what the client got, far less than the whole answer.
        assert output.startswith("".join(received)) and len(output.split()) < WORDS / 2
        usage = run["metadata"]["usage"]
        assert usage["completion_tokens"] == len(output.split())
        assert usage["prompt_tokens"] >= WORDS  # the prompt (system prompt and input) was sent whole

        messages = await db.read("messages", {"conversation_id": run["conversation_id"]}, order_by="created_at")
        assert [(m["role"], m["content"]) for m in messages] == [("user", text), ("assistant", output)]

        (chat_row,) = await db.read("audit_logs", {"request_id": chat_request_id})
        assert chat_row["reason"] == "cancelled"
        (chat_run,) = await db.read("agent_executions", {"input_message": "chat " + text})
        assert chat_run["status"] == "cancelled" and chat_run["error_message"].startswith("cancelled: the client")
        assert len(chat_run["output_message"].split()) < WORDS / 2
        chat_usage = chat_run["metadata"]["usage"]
        assert chat_usage["completion_tokens"] == len(chat_run["output_message"].split())

    # The budget was charged the two cancelled runs' tokens (the header shows what was left
    # before the third run), not the 2 x 200 of each whole answer.
    charged = sum(u["prompt_tokens"] + u["completion_tokens"] for u in (usage, chat_usage))
    assert TOKEN_BUDGET - tokens_left(after) == charged


async def test_disconnect_while_a_chunk_is_being_written(tmp_path: Path) -> None:
    """The client leaves while the server is blocked writing a chunk (not inside the run): the
    run still ends at once and is recorded the same way. A raw ASGI driver controls the timing."""
    from tests.asgi_harness import Lifespan, http_scope
    from tframex_asgi import build_stack
    from tframex_asgi.demo import build_demo_app
    from tframex_asgi.endpoint import TFrameXEndpoint
    from tframex_asgi.llm import OfflineLLM

    url = f"sqlite:///{tmp_path}/raw.db"
    stack = build_stack(
        TFrameXEndpoint(build_demo_app(OfflineLLM())),  # no delay: the run never waits, only send does
        enable_security=False,
        enable_persistence=True,
        persistence_config={"connection_string": url},
    )
    text = "one two three four five six seven eight"
    body = json.dumps({"input": text, "stream": True}).encode()
    asked = False
    gone = asyncio.Event()
    bodies: list[bytes] = []

    async def receive() -> dict[str, object]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])  # type: ignore[arg-type]
            if len(bodies) == 3:
                gone.set()
                await asyncio.Event().wait()  # this write never completes: the peer is gone

    life = Lifespan(stack)
    assert (await life.startup())["type"] == "lifespan.startup.complete"
    headers = {"content-type": "application/json", "content-length": str(len(body))}
    await asyncio.wait_for(stack(http_scope("POST", "/agents/assistant/run", headers), receive, send), 10)
    await life.shutdown()
    async with open_storage(url) as db:
        (run,) = await db.read("agent_executions", {"input_message": text})
        assert run["status"] == "cancelled"
        assert run["error_message"] == "cancelled: the client disconnected before the run finished"
        # Three chunks were produced (the third one's write never completed), no more.
        assert run["output_message"] == "Echo: one two"
        assert run["metadata"]["usage"]["completion_tokens"] == 3
        messages = await db.read("messages", {"conversation_id": run["conversation_id"]}, order_by="created_at")
        assert [m["role"] for m in messages] == ["user", "assistant"]
