"""Read the ``enterprise:`` block from YAML, with ``${VAR}`` and ``${VAR:-default}`` substitution."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tframex_asgi.config._parse import join
from tframex_asgi.config.model import EnterpriseConfig
from tframex_asgi.errors import ConfigError

__all__ = ["load_config", "loads_block", "loads_config", "read_block", "substitute_env"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}|\$\$")


def substitute_env(value: Any, path: str, environ: Mapping[str, str]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string; ``$$`` is a literal ``$``.

    A ``${VAR}`` without a default that is unset is an error naming the key that used it.
    """
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            found = environ.get(name)
            if found is None or (found == "" and default is not None):
                if default is None:
                    raise ConfigError(path, f"environment variable {name} is not set (use ${{{name}:-default}})")
                return default
            return found

        return _VAR.sub(repl, value)
    if isinstance(value, Mapping):
        return {k: substitute_env(v, join(path, str(k)), environ) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, join(path, i), environ) for i, v in enumerate(value)]
    return value


def loads_config(text: str, *, source: str = "<string>", environ: Mapping[str, str] | None = None) -> EnterpriseConfig:
    """Parse YAML text holding an ``enterprise:`` block (an empty document gives the defaults)."""
    return EnterpriseConfig.from_mapping(loads_block(text, source=source, environ=environ), "enterprise")


def loads_block(text: str, *, source: str = "<string>", environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The contents of the ``enterprise:`` block of YAML text, env-substituted, not yet parsed
    (so it can be layered over other settings first)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError("", f"{source}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError("", f"{source}: expected a mapping with an 'enterprise:' key")
    unknown = [k for k in data if k != "enterprise"]
    if unknown:
        raise ConfigError(str(unknown[0]), f"unknown top-level key in {source} (only 'enterprise' is read)")
    env = os.environ if environ is None else environ
    block = data.get("enterprise") or {}
    if not isinstance(block, Mapping):
        raise ConfigError("enterprise", f"{source}: expected a mapping, got {type(block).__name__}")
    substituted: dict[str, Any] = substitute_env(block, "enterprise", env)
    return substituted


def _read(path: str | os.PathLike[str]) -> tuple[str, str]:
    file = Path(path)
    try:
        return file.read_text(encoding="utf-8"), str(file)
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {str(file)!r}: {exc.strerror}") from exc


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> EnterpriseConfig:
    text, source = _read(path)
    return loads_config(text, source=source, environ=environ)


def read_block(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The env-substituted ``enterprise:`` block of the file at ``path`` (see :func:`loads_block`)."""
    text, source = _read(path)
    return loads_block(text, source=source, environ=environ)
