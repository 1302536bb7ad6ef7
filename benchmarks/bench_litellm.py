"""``POST /v1/chat/completions`` under wrk: `tframex-asgi serve` next to the LiteLLM proxy.

Both answer without a model behind them: ours serves the demo agent ``assistant`` on the built-in
offline LLM, authenticated by an API key (the serve defaults: SQLite, API keys, audit level
``security``, Prometheus; rate limit raised so it never rejects); LiteLLM's proxy serves a model with
``mock_response`` (no upstream call), authenticated by its master key, no database. Each is one
uvicorn-style worker on 127.0.0.1; wrk rounds alternate between the two (same machine conditions),
and the figure is the median per-round ratio of req/s.

LiteLLM is looked up as ``$TFX_BENCH_LITELLM`` (its ``litellm`` executable), else ``litellm`` next
to this interpreter or on PATH; without it the comparison is skipped with a message. It is kept out
of the project's venv because its pins move packages ours is tested with (mcp, cryptography, boto3):

    python3 -m venv /tmp/litellm-venv && /tmp/litellm-venv/bin/pip install 'litellm[proxy]'
    TFX_BENCH_LITELLM=/tmp/litellm-venv/bin/litellm .venv/bin/python -m benchmarks.bench_litellm

Writes ``benchmarks/results/litellm.json`` (``--json``) and ``docs/img/bench-litellm.png`` (``--plot``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.load import ROOT, _free_port, parse_wrk

MASTER_KEY = "sk-tfx-bench-master-0123456789"
MOCK_MODEL = "mock-gpt"
PROMPT = [{"role": "user", "content": "hi"}]
_LITELLM_CONFIG = f"""
model_list:
  - model_name: {MOCK_MODEL}
    litellm_params:
      model: openai/{MOCK_MODEL}
      api_key: unused
      mock_response: "Hello! How can I help you today?"
general_settings:
  master_key: {MASTER_KEY}
litellm_settings:
  set_verbose: false
  telemetry: false
"""
_OURS_CONFIG = """
enterprise:
  persistence: {{connection_string: "sqlite:///{db}"}}
  security:
    rate_limiting: {{default: "1000000000/minute", strategy: fixed-window}}
"""


def find_litellm() -> str | None:
    explicit = os.environ.get("TFX_BENCH_LITELLM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    beside = Path(sys.executable).with_name("litellm")
    return str(beside) if beside.exists() else shutil.which("litellm")


def _wait(port: int, proc: subprocess.Popen[bytes], log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-800:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"server not up in {seconds:.0f} s: {log.read_text(errors='replace')[-800:]}")


def _popen(cmd: list[str], log: Path, env: dict[str, str], cwd: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def start_ours(tmp: Path) -> tuple[subprocess.Popen[bytes], int, dict[str, str], str]:
    port = _free_port()
    cfg = tmp / "ours.yaml"
    cfg.write_text(_OURS_CONFIG.format(db=tmp / "ours.db"))
    log = tmp / "ours.log"
    exe = str(Path(sys.executable).with_name("tframex-asgi"))
    proc = _popen([exe, "serve", "--config", str(cfg), "--port", str(port), "--log-level", "warning"], log,
                  dict(os.environ), str(tmp))  # fmt: skip
    _wait(port, proc, log)
    found = re.search(r"tfx_[A-Za-z0-9_\-]+", log.read_text(errors="replace"))
    if not found:
        raise RuntimeError(f"no admin API key printed: {log.read_text(errors='replace')[-800:]}")
    return proc, port, {"X-API-Key": found.group(0)}, "assistant"


def start_litellm(exe: str, tmp: Path) -> tuple[subprocess.Popen[bytes], int, dict[str, str], str]:
    port = _free_port()
    cfg = tmp / "litellm.yaml"
    cfg.write_text(_LITELLM_CONFIG)
    log = tmp / "litellm.log"
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "DISABLE_SCHEMA_UPDATE": "true"}
    env.pop("DATABASE_URL", None)
    proc = _popen([exe, "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
                  log, env, str(tmp))  # fmt: skip
    _wait(port, proc, log, seconds=180)
    return proc, port, {"Authorization": f"Bearer {MASTER_KEY}"}, MOCK_MODEL


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _lua(tmp: Path, name: str, headers: dict[str, str], model: str) -> Path:
    body = json.dumps({"model": model, "messages": PROMPT})
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(body)}",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path = tmp / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def _check(port: int, headers: dict[str, str], model: str) -> str:
    import urllib.request

    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=json.dumps({"model": model, "messages": PROMPT}).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return str(json.loads(resp.read())["choices"][0]["message"]["content"])


def _wrk(port: int, script: Path, seconds: int, connections: int) -> Any:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s", "-s", str(script),
           f"http://127.0.0.1:{port}/v1/chat/completions"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    return parse_wrk(done.stdout)


def measure(exe: str, rounds: int, seconds: int, connections: int) -> dict[str, Any]:
    out: dict[str, Any] = {"rounds": rounds, "seconds": seconds, "connections": connections, "servers": {}}
    with tempfile.TemporaryDirectory(prefix="tfx-litellm-") as name:
        tmp = Path(name)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            servers = {}
            for label in ("tframex-asgi", "litellm"):
                proc, port, headers, model = start_ours(tmp) if label == "tframex-asgi" else start_litellm(exe, tmp)
                procs.append(proc)
                answer = _check(port, headers, model)
                print(f"{label} on :{port} answers {answer[:40]!r}", flush=True)
                servers[label] = (port, _lua(tmp, label.replace("-", "_"), headers, model))
            for port, script in servers.values():  # warm-up
                _wrk(port, script, 2, connections)
            samples: dict[str, list[Any]] = {label: [] for label in servers}
            for r in range(rounds):
                order = list(servers) if r % 2 == 0 else list(reversed(servers))
                for label in order:
                    samples[label].append(_wrk(*servers[label], seconds, connections))
                print(", ".join(f"{k} {v[-1].rps:.0f} req/s" for k, v in samples.items()), flush=True)
        finally:
            for proc in procs:
                _stop(proc)
    for label, runs in samples.items():
        out["servers"][label] = {
            "rps": statistics.median(s.rps for s in runs),
            "p50_ms": statistics.median(s.p50_ms for s in runs),
            "p99_ms": statistics.median(s.p99_ms for s in runs),
            "errors": sum(s.errors for s in runs),
            "rounds": [s.__dict__ for s in runs],
        }
    ours, theirs = samples["tframex-asgi"], samples["litellm"]
    out["rps_ratio"] = statistics.median(a.rps / b.rps for a, b in zip(ours, theirs, strict=True))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "litellm.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "bench-litellm.png")
    args = parser.parse_args()
    exe = find_litellm()
    if exe is None:
        print(
            "LiteLLM is not installed: skipping the comparison. Install it apart from the project's venv:\n"
            "  python3 -m venv /tmp/litellm-venv && /tmp/litellm-venv/bin/pip install 'litellm[proxy]'\n"
            "  TFX_BENCH_LITELLM=/tmp/litellm-venv/bin/litellm .venv/bin/python -m benchmarks.bench_litellm"
        )
        return 0
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk): skipping the comparison")
        return 0
    data = measure(exe, args.rounds, args.seconds, args.connections)
    version = subprocess.run([str(Path(exe).with_name("python")), "-c",
                              "import importlib.metadata as m; print(m.version('litellm'))"],
                             capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    data["litellm_version"] = version or "?"
    from benchmarks.run import machine_info

    data["machine"] = {k: v for k, v in machine_info().items() if k != "packages"}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=1) + "\n")
    from benchmarks.plots import plot_litellm

    plot_litellm(data, args.plot)
    for label, s in data["servers"].items():
        print(
            f"{label:13} {s['rps']:7.0f} req/s  p50 {s['p50_ms']:6.2f} ms  p99 {s['p99_ms']:6.2f} ms"
            f"  errors {s['errors']}"
        )
    print(f"tframex-asgi / litellm req/s: {data['rps_ratio']:.2f}x (median of per-round ratios)")
    print(f"wrote {args.json} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
