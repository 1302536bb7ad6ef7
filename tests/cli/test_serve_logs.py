"""What a real ``tframex-asgi serve`` process writes to stdout/stderr: never a credential (uvicorn's
access line included), and nothing below the chosen ``--log-level``, whichever logger wrote it."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.cli.test_serve import KEY, Server

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMH0"
    ".Zm9yZ2VkLXNpZ25hdHVyZS1zaG91bGQtbm90LWJlLWxvZ2dlZA"
)
HEX = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
B64 = "q8Xz3LmN0pRt7VwY2aBcDeFgHiJkLmNoPqRsTuVw"
FAKE_KEY = "tfx_0123456789ab_" + "Zz9-Yy8_Xx7" * 4


def _run_agent(server: Server, key: str) -> None:
    run = httpx.post(
        server.url + "/agents/calculator/run", headers={"X-API-Key": key}, json={"input": "add 2 and 40"}, timeout=30
    )
    assert run.status_code == 200, run.text


def test_serve_logs_no_credential_and_no_debug_line_at_info(tmp_path: Path) -> None:
    server = Server(tmp_path, log_level="info")
    try:
        key = KEY.findall(server.output())[0]
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert c.get("/agents", params={"api_key": key}).status_code == 401  # keys never in the query
            assert c.get("/agents", params={"access_token": JWT}).status_code == 401
            assert c.get("/agents", params={"note": f"sig {HEX}", "k": FAKE_KEY}).status_code == 401
            assert c.get(f"/conversations/{B64}", headers={"Authorization": f"Bearer {JWT}"}).status_code == 401
            assert c.get("/agents", headers={"X-API-Key": key, "User-Agent": f"bot Bearer {JWT}"}).status_code == 200
        _run_agent(server, key)
    finally:
        assert server.stop() in (0, -signal.SIGTERM), server.output()
    out = server.output()
    access = [line for line in out.splitlines() if '"GET /' in line and "/healthz" not in line]
    assert len(access) == 5, out  # every request still has its access line ...
    assert any("api_key=[REDACTED]" in line for line in access), access
    assert any("access_token=[REDACTED]" in line for line in access), access
    assert any("/conversations/[REDACTED]" in line for line in access), access
    # ... and no credential is anywhere in the output but the one-time admin key banner.
    for secret in (JWT, JWT.split(".")[2], HEX, B64, FAKE_KEY[17:]):
        assert secret not in out
    banner = [line for line in out.splitlines() if key in line]
    assert len(banner) == 2 and all("curl -H" in line or line.strip() == key for line in banner), banner
    # TFrameX pins tframex.agent_internal_debug to DEBUG (system prompts): not at --log-level info.
    assert "agent_internal_debug" not in out and "DEBUG" not in out, out


def test_serve_respects_log_level_warning_for_every_logger(tmp_path: Path) -> None:
    server = Server(tmp_path, log_level="warning")
    try:
        _run_agent(server, KEY.findall(server.output())[0])
    finally:
        assert server.stop() in (0, -signal.SIGTERM), server.output()
    lines = [line for line in server.output().splitlines() if line.startswith(("DEBUG", "INFO"))]
    assert lines == [], lines


def test_redacting_filter_covers_arguments_tracebacks_and_urls() -> None:
    import logging

    from tframex_asgi.cli.logs import RedactingFilter

    try:
        raise ValueError(f"bad header Bearer {JWT}")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "x",
            logging.ERROR,
            __file__,
            1,
            "connect %s failed",
            ("redis://:hunter2pw@10.0.0.1:6379/0",),
            sys.exc_info(),
        )
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "hunter2pw" not in text and JWT not in text
    assert "redis://:[REDACTED]@10.0.0.1:6379/0" in text and "Bearer [REDACTED]" in text
