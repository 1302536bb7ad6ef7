"""Every code sample in README.md and docs/ marked as tested runs here.

Markers (an HTML comment on the line before a fenced block, invisible in the rendered site):

- ``<!-- test -->`` before a ``python`` block: executed; the blocks of one page share a namespace, a
  fresh working directory and a process of their own (``page_runner``), in page order.
- ``<!-- test: serve -->`` before a ``python`` block: a client of ``tframex-asgi serve``, executed
  like the others while the server runs (started with its defaults by ``page_runner``; the block's
  ``http://127.0.0.1:8000`` and ``tfx_...`` stand for its address and its first-start admin key).
- ``<!-- test: file NAME -->``: the block is written to ``NAME`` in that directory first.
- ``<!-- test: config -->`` before a ``yaml`` block: must load with ``loads_config`` (with the
  environment below for ``${VAR}``).
- ``<!-- test: config-defaults -->``: must load and equal ``EnterpriseConfig()``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MARKER = re.compile(r"^<!--\s*test(?::\s*(?P<kind>[\w-]+)(?:\s+(?P<arg>\S+))?)?\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")

# docs/authentication.md's jwt.public_key (an RSA public key of no use to anyone).
JWT_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApn5khclKTn0c+9/zxOHq
AusZgWCmIKBrf//SLneYY74T4kVEyySZ61cequdiCvmYXH9/0Lhk/BiUmRhjKlK3
Ay4MUmbJ8do8PwinrLje1XOCRi5Zc6LggUAyphhR2o/CEe/KMNkU8Xq6jfPra8k4
wcSG39IciOnuSitTTM5S6zw32EUDRVBtUVuIt7ML+iKvzCMKv8vVP0DhFw/Igi30
EZ5AJmnHhxDdbz7VGN16L63eSFBSn57qXSC/M4lsE/HKyLVGpm0q7shRU7Tqs+pd
75VQgmVTHZPvu1PaqSP+1Z0CdU6h3FI0NOveHILDvod8lBxOZ6gW5XUFXzm8/cc0
7wIDAQAB
-----END PUBLIC KEY-----
"""

# What the deployment pages' ${VAR}s stand for in the tests.
DOC_ENV = {
    "DATABASE_URL": "postgresql://tframex:secret@postgres:5432/tframex",
    "REDIS_URL": "redis://redis:6379/0",
    "JWT_SECRET": "a-shared-secret-of-at-least-32-bytes!!",
    "OIDC_ISSUER": "https://login.example.com/realms/acme",
    "OIDC_CLIENT_ID": "tframex",
    "OIDC_CLIENT_SECRET": "s3cret",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318/v1/traces",
    "AUDIT_HMAC_KEY": "another-secret-of-at-least-32-bytes!",
    "JWT_PUBLIC_KEY": JWT_PUBLIC_KEY,
    "OAUTH2_ISSUER": "https://login.example.com/realms/acme",
    "OAUTH2_CLIENT_ID": "tframex",
    "OAUTH2_CLIENT_SECRET": "s3cret",
}


def blocks(page: Path) -> list[tuple[str, str | None, str, int]]:
    """(kind, arg, code, line) for every marked block of ``page``."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found = []
    i = 0
    while i < len(lines):
        marker = MARKER.match(lines[i].strip())
        if marker:
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            fence = FENCE.match(lines[j]) if j < len(lines) else None
            assert fence, f"{page.name}:{i + 1}: a test marker must be followed by a fenced block"
            body = []
            k = j + 1
            while k < len(lines) and not lines[k].strip().startswith(fence.group("fence")):
                body.append(lines[k][len(fence.group("indent")) :])
                k += 1
            kind = marker.group("kind") or fence.group("lang")
            found.append((kind, marker.group("arg"), "\n".join(body) + "\n", j + 2))
            i = k
        i += 1
    return found


PAGES = sorted(p for p in (ROOT / "README.md", *DOCS.glob("*.md")) if blocks(p))


def test_the_pages_i_expect_have_tested_samples() -> None:
    names = {p.name for p in PAGES}
    for page in (
        "README.md",
        "getting-started.md",
        "configuration.md",
        "deployment.md",
        "security-model.md",
        "migration-from-tframex-enterprise.md",
        "mcp.md",
    ):
        assert page in names, f"{page} has no tested sample"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_samples(page: Path, tmp_path: Path) -> None:
    blocks_file = tmp_path / "_blocks.json"
    payload = [
        {"kind": kind, "arg": arg, "code": code, "where": f"{page.relative_to(ROOT)}:{line}"}
        for kind, arg, code, line in blocks(page)
    ]
    blocks_file.write_text(json.dumps({"blocks": payload}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "TFRAMEX_"))}
    env.update(DOC_ENV)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prometheus")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "tests.docs.page_runner", str(blocks_file)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, f"{page.relative_to(ROOT)} samples failed:\n{done.stdout}\n{done.stderr[-4000:]}"


def test_configuration_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("config_reference", DOCS / "_gen" / "config_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "configuration.md").read_text(encoding="utf-8") == module.render(), (
        "docs/configuration.md is stale: run .venv/bin/python docs/_gen/config_reference.py"
    )
