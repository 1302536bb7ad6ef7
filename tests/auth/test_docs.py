"""The Python example in docs/authentication.md runs and prints what the page says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "authentication.md"


def test_authentication_doc_example_runs(tmp_path) -> None:
    block = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(block)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "{'user': 'alice', 'permissions': ['agent.execute']}",
        "alice",
        '401 [\'ApiKey header="X-API-Key"\', \'Basic realm="tframex", charset="UTF-8"\']',
    ]
