"""What a `pip install` user gets: the LICENSE and the Grafana dashboard in the wheel, the
`tframex-asgi dashboard` command, and the README's Basic-auth path followed literally."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

from tests.cli.test_serve import KEY, Server

ROOT = Path(__file__).resolve().parents[2]
DOCS_DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"


def cli(
    *args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TFRAMEX_")}, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tframex_asgi", *args], cwd=cwd, env=env, input=stdin,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_dashboard_command_prints_the_docs_copy(tmp_path: Path) -> None:
    done = cli("dashboard", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == DOCS_DASHBOARD.read_text(encoding="utf-8")


def test_wheel_ships_license_and_dashboard(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "tframex_asgi", src / "tframex_asgi", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert zf.read("tframex_asgi/metrics/grafana-dashboard.json") == DOCS_DASHBOARD.read_bytes()
        licenses = [n for n in names if n.endswith("LICENSE") and ".dist-info/" in n]
        assert licenses, names
        assert b"MIT License" in zf.read(licenses[0])


def test_readme_basic_auth_path(tmp_path: Path) -> None:
    """README, Authentication: create alice with a password from stdin, then `curl -u alice:...`."""
    server = Server(tmp_path)
    try:
        (key,) = KEY.findall(server.output())
        made = cli(
            "users", "create", "alice", "--role", "developer", "--password-stdin",
            cwd=tmp_path, stdin="correct horse battery\n",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert c.get("/agents", headers={"X-API-Key": key}).status_code == 200
            assert c.get("/agents", auth=("alice", "correct horse battery")).status_code == 200
            assert c.get("/agents", auth=("alice", "wrong")).status_code == 401
    finally:
        assert server.stop() in (0, -signal.SIGTERM), server.output()
