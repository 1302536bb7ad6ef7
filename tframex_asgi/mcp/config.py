"""The MCP servers file (tframex's ``servers_config.json`` format), read strictly.

tframex 1.1.0 skips a bad entry with a warning and serves without it; here a bad entry is a
:class:`ConfigError` naming its dotted path (``mcpServers.math.command``), so startup fails
loudly instead of losing a server quietly. ``env`` and ``headers`` values take ``${VAR}`` and
``${VAR:-default}``, which is how a secret reaches one server without reaching the others.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from tframex_asgi.config.loader import substitute_env
from tframex_asgi.errors import ConfigError

__all__ = ["DEFAULT_CONFIG_FILE", "MCPServerConfig", "load_servers", "parse_servers"]

# TFrameXApp's default mcp_config_file: a missing file of that name just means "no MCP".
DEFAULT_CONFIG_FILE = "servers_config.json"
Transport = Literal["stdio", "streamable-http", "sse"]
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_COMMON = {
    "type",
    "init_step_timeout",
    "tool_call_timeout",
    "ping_interval",
    "resource_read_timeout",
    "prompt_get_timeout",
    "description",
}
_KEYS: dict[str, set[str]] = {
    "stdio": _COMMON | {"command", "args", "env", "cwd"},
    "streamable-http": _COMMON | {"url", "headers"},
    "sse": _COMMON | {"url", "headers"},
}


@dataclass(frozen=True, slots=True)
class MCPServerConfig:
    alias: str
    type: Transport
    command: str | None = None
    args: tuple[str, ...] = ()
    # Values may be secrets: kept out of repr so a logged config never shows them.
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    init_step_timeout: float = 30.0
    tool_call_timeout: float = 30.0
    ping_interval: float = 10.0


def _number(entry: Mapping[str, Any], key: str, path: str, default: float) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise ConfigError(f"{path}.{key}", f"must be a number of seconds above 0 and at most 3600, got {value!r}")
    return float(value)


def _strings(value: Any, path: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(path, "must be an object of string values")
    return dict(value)


def _server(alias: Any, entry: Any, path: str, environ: Mapping[str, str]) -> MCPServerConfig:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or "__" in alias:
        # "__" separates the alias from the tool name in "alias__tool".
        raise ConfigError(path, "a server alias takes letters, digits, '-' and '_' (never '__')")
    if not isinstance(entry, Mapping):
        raise ConfigError(path, "must be an object")
    kind = entry.get("type")
    if kind not in _KEYS:
        raise ConfigError(f"{path}.type", f"must be one of {', '.join(sorted(_KEYS))}, got {kind!r}")
    unknown = sorted(set(entry) - _KEYS[kind])
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}", f"unknown key for a {kind} server")
    base = MCPServerConfig(
        alias,
        kind,
        init_step_timeout=_number(entry, "init_step_timeout", path, 30.0),
        tool_call_timeout=_number(entry, "tool_call_timeout", path, 30.0),
        ping_interval=_number(entry, "ping_interval", path, 10.0),
    )
    if kind == "stdio":
        command = entry.get("command")
        if not isinstance(command, str) or not command:
            raise ConfigError(f"{path}.command", "a stdio server needs a non-empty command")
        args = entry.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ConfigError(f"{path}.args", "must be a list of strings")
        cwd = entry.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise ConfigError(f"{path}.cwd", "must be a string")
        env = substitute_env(_strings(entry.get("env", {}), f"{path}.env"), f"{path}.env", environ)
        return replace(base, command=command, args=tuple(args), env=env, cwd=cwd)
    url = entry.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"{path}.url", f"a {kind} server needs an http:// or https:// url")
    headers = substitute_env(_strings(entry.get("headers", {}), f"{path}.headers"), f"{path}.headers", environ)
    return replace(base, url=url, headers=headers)


def parse_servers(data: Any, *, environ: Mapping[str, str] | None = None) -> tuple[MCPServerConfig, ...]:
    """The servers of an already decoded ``{"mcpServers": {...}}`` document."""
    env = os.environ if environ is None else environ
    if not isinstance(data, Mapping) or not isinstance(data.get("mcpServers"), Mapping):
        raise ConfigError("mcpServers", "the MCP config must be an object with an 'mcpServers' object")
    return tuple(_server(alias, entry, f"mcpServers.{alias}", env) for alias, entry in data["mcpServers"].items())


def load_servers(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> tuple[MCPServerConfig, ...]:
    """The servers in the JSON file at ``path``; ``()`` when it is tframex's default name and absent."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        if file.name == DEFAULT_CONFIG_FILE and str(path) == DEFAULT_CONFIG_FILE:
            return ()
        raise ConfigError("mcp_config_file", f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError("mcp_config_file", f"{path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError("mcp_config_file", f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    try:
        return parse_servers(data, environ=environ)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.path}", exc.reason) from exc
