"""Run one docs page's marked blocks in order, in this process (started by test_doc_samples.py).

Usage: ``python -m tests.docs.page_runner BLOCKS.json`` in the page's working directory. Each page
runs in its own process because samples may switch process-wide state (Prometheus multiprocess
mode, the default registry, environment variables).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(path: str) -> None:
    from tframex_asgi.config import EnterpriseConfig, loads_config

    page = json.loads(Path(path).read_text(encoding="utf-8"))
    environ = dict(os.environ)
    namespace: dict[str, object] = {"__name__": "__main__"}
    for block in page["blocks"]:
        kind, arg, code, where = block["kind"], block["arg"], block["code"], block["where"]
        if kind == "file":
            if not arg:
                raise SystemExit(f"{where}: a file marker needs a name")
            target = Path(arg)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(code, encoding="utf-8")
        elif kind == "python":
            exec(compile(code, where, "exec"), namespace)  # noqa: S102 - our own docs
        elif kind == "config":
            loads_config(code, source=where, environ=environ)
        elif kind == "config-defaults":
            if loads_config(code, source=where, environ={}) != EnterpriseConfig():
                raise SystemExit(f"{where}: the defaults block differs from EnterpriseConfig()")
        else:
            raise SystemExit(f"{where}: unknown test marker kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1])
