"""The environment of a stdio MCP server: only what its config names, plus what a program needs to start.

tframex 1.1.0 hands a stdio server the whole process environment, so any tool of any server
could read the LLM key, the database URL or cloud credentials. Here a server sees the MCP SDK's
own safe set (``HOME``, ``LOGNAME``, ``PATH``, ``SHELL``, ``TERM``, ``USER``; the Windows
equivalents there), the locale variables (so a Python or Node interpreter decodes text as the
operator expects) and the ``env`` of its config entry, which wins over both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mcp.client.stdio import DEFAULT_INHERITED_ENV_VARS

__all__ = ["LOCALE_VARS", "server_environment"]

LOCALE_VARS = ("LANG", "LC_ALL", "LC_CTYPE")


def server_environment(configured: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    source = os.environ if environ is None else environ
    # A value starting with "()" is an exported shell function: never inherited (as in the SDK).
    names = (*DEFAULT_INHERITED_ENV_VARS, *LOCALE_VARS)
    env = {k: source[k] for k in names if k in source and not source[k].startswith("()")}
    env.update(configured)
    return env
