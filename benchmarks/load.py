"""Under load: each configuration in its own uvicorn process on 127.0.0.1, wrk (or a small
asyncio client when wrk is missing) on loopback, rounds interleaved across the servers.

All servers start first and stay up; each round runs the load generator against every server
in turn (order rotating between rounds), so throughput and latency are compared under the same
machine conditions. Only the processes started here are stopped, by their own handles.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.apps import PATH
from benchmarks.configs import BenchConfig, BenchContext

__all__ = ["LoadResult", "run_load", "server_stack"]

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _version_in_server(name: str) -> str | None:
    """The version of ``name`` as the servers will import it (None: not importable)."""
    code = f"import importlib.metadata as m, {name}; print(getattr({name}, '__version__', None) or m.version('{name}'))"
    probe = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_server_env({}), check=False
    )
    return probe.stdout.strip() or "?" if probe.returncode == 0 else None


def _server_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    extra_path = env.get("TFX_BENCH_PYTHONPATH")  # e.g. uvloop/httptools kept outside the venv
    paths = [str(ROOT), *([extra_path] if extra_path else []), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def server_stack() -> dict[str, str]:
    """The uvicorn event loop and HTTP parser the servers use (the fastest installed)."""
    uvloop, httptools = _version_in_server("uvloop"), _version_in_server("httptools")
    return {
        "loop": f"uvloop {uvloop}" if uvloop else "asyncio",
        "http": f"httptools {httptools}" if httptools else f"h11 {_version_in_server('h11')}",
    }


@dataclass
class Server:
    config: BenchConfig
    port: int
    proc: subprocess.Popen[bytes]
    ready_file: Path
    log_file: Path
    headers: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"


def _start(
    config: BenchConfig,
    ctx: BenchContext,
    workdir: Path,
    stack: dict[str, str],
    extra_env: dict[str, str] | None = None,
    slug: str | None = None,
) -> Server:
    port = _free_port()
    slug = slug or re.sub(r"[^A-Za-z0-9]+", "-", config.name)
    ready = workdir / f"ready-{slug}.json"
    log = workdir / f"server-{slug}.log"
    ready.unlink(missing_ok=True)
    env = _server_env({
        **ctx.to_env(), "TFX_BENCH_CONFIG": config.name, "TFX_BENCH_READY": str(ready), **(extra_env or {})
    })  # fmt: skip
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "benchmarks.serve:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--loop", stack["loop"].split()[0], "--http", stack["http"].split()[0], "--lifespan", "on",
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Server(config, port, proc, ready, log)


def _wait_ready(server: Server, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.ready_file.exists():
            data = json.loads(server.ready_file.read_text())
            if "error" in data:
                server.error = data["error"]
                return
            server.headers = [(k, v) for k, v in data["headers"]]
            # The ready file is written just before startup completes: wait for the socket.
            while time.monotonic() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                        return
                except OSError:
                    if server.proc.poll() is not None:
                        break
                    time.sleep(0.1)
        if server.proc.poll() is not None:
            tail = server.log_file.read_text(errors="replace")[-600:]
            server.error = f"server exited with {server.proc.returncode}: {tail.strip()}"
            return
        time.sleep(0.1)
    server.error = "server did not become ready in time"


def _stop(server: Server) -> None:
    proc = server.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # graceful: runs lifespan shutdown (flushes the audit queue)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not match:
        raise ValueError(f"cannot read a wrk latency: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> Sample:
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return Sample(rps, p50, p99, errors)


def _wrk(server: Server, seconds: float, connections: int) -> Sample:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    for key, value in server.headers:
        cmd += ["-H", f"{key}: {value}"]
    cmd.append(server.url)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    return parse_wrk(done.stdout)


def _pyload(server: Server, seconds: float, connections: int) -> Sample:
    cmd = [
        sys.executable, "-m", "benchmarks.loadgen", "--port", str(server.port), "--path", PATH,
        "--seconds", str(seconds), "--connections", str(connections),
    ]  # fmt: skip
    for key, value in server.headers:
        cmd += ["--header", f"{key}: {value}"]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 30, cwd=ROOT, env=_server_env({}), check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed: {done.stderr.strip()[-400:]}")
    data = json.loads(done.stdout)
    return Sample(data["rps"], data["p50_ms"], data["p99_ms"], data["errors"])


@dataclass
class LoadResult:
    name: str
    base: str
    samples: list[Sample] = field(default_factory=list)
    rps_ratio: list[float] = field(default_factory=list)  # this round's req/s / the base's
    p50_ratio: list[float] = field(default_factory=list)
    p99_ratio: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        med = statistics.median
        return {
            "name": self.name,
            "base": self.base,
            "rps": med(s.rps for s in self.samples),
            "p50_ms": med(s.p50_ms for s in self.samples),
            "p99_ms": med(s.p99_ms for s in self.samples),
            "errors": sum(s.errors for s in self.samples),
            "rps_ratio": med(self.rps_ratio),
            "p50_ratio": med(self.p50_ratio),
            "p99_ratio": med(self.p99_ratio),
            "rounds": [s.__dict__ for s in self.samples],
        }


def run_load(
    configs: list[BenchConfig],
    ctx: BenchContext,
    *,
    rounds: int,
    seconds: float,
    connections: int,
    workdir: Path,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, LoadResult], dict[str, str], dict[str, str]]:
    stack = server_stack()
    generator = "wrk" if shutil.which("wrk") else "python"
    run = _wrk if generator == "wrk" else _pyload
    if generator == "wrk":
        banner = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split()
        generator = " ".join(banner[:2]) if banner[:1] == ["wrk"] else "wrk"
    else:
        generator = "benchmarks/loadgen.py"
    info = {**stack, "generator": generator, "connections": str(connections), "seconds": str(seconds)}
    skipped: dict[str, str] = {}
    servers: list[Server] = []
    try:
        for config in configs:
            servers.append(_start(config, ctx, workdir, stack))
        deadline = time.monotonic() + 120
        for server in servers:
            _wait_ready(server, deadline)
            if server.error:
                skipped[server.config.name] = server.error
                log(f"  skip {server.config.name} under load: {server.error}")
                _stop(server)
        live = [s for s in servers if not s.error]
        names = {s.config.name for s in live}
        for server in live:
            if server.config.base not in names:
                skipped[server.config.name] = f"its baseline {server.config.base!r} is unavailable"
        live = [s for s in live if s.config.name not in skipped]
        log(f"  {len(live)} servers up ({stack['loop']} + {stack['http']}, load by {generator})")
        for server in live:  # warm-up, untimed
            run(server, 1, connections)
        results = {s.config.name: LoadResult(s.config.name, s.config.base) for s in live}
        for r in range(rounds):
            order = live[r % len(live) :] + live[: r % len(live)] if live else []
            if r % 2:
                order.reverse()
            samples: dict[str, Sample] = {}
            for server in order:
                samples[server.config.name] = run(server, seconds, connections)
            for server in live:
                res, sample, base = (
                    results[server.config.name],
                    samples[server.config.name],
                    samples[server.config.base],
                )
                res.samples.append(sample)
                res.rps_ratio.append(sample.rps / base.rps)
                res.p50_ratio.append(sample.p50_ms / base.p50_ms)
                res.p99_ratio.append(sample.p99_ms / base.p99_ms)
            bare = samples.get("bare")
            log(f"  load round {r + 1}/{rounds}" + (f": bare {bare.rps:.0f} req/s" if bare else ""))
        for name, res in results.items():
            if any(s.errors for s in res.samples):
                log(f"  warning: {name} had {sum(s.errors for s in res.samples)} errors/non-2xx responses")
    finally:
        for server in servers:
            _stop(server)
    return results, skipped, info
