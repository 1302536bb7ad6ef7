"""Route rules: the endpoint's route -> permission table, the default public paths, and the
grammar of a ``"METHOD /template"`` rule.

The grammar lives here, below the config, so a config section can refuse a bad or clashing rule
when it is constructed, with exactly the error the route table (:mod:`tframex_asgi.paths`) would
raise at start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = [
    "ANY_METHOD",
    "DEFAULT_PUBLIC_PATHS",
    "ENDPOINT_ROUTES",
    "PUBLIC",
    "STANDARD_METHODS",
    "RuleSet",
    "Segment",
    "compile_template",
    "merge_rules",
    "parse_rule",
]

# Route rule value meaning "no permission needed" (authentication still decides who gets in).
PUBLIC: Final = "public"

# Served without credentials and never rate limited: load balancer health checks.
DEFAULT_PUBLIC_PATHS: Final = ("/healthz", "/readyz")

# DESIGN.md "HTTP routes of the endpoint". HEAD is matched through GET by the route table.
ENDPOINT_ROUTES: Final = MappingProxyType(
    {
        "GET /healthz": PUBLIC,
        "GET /readyz": PUBLIC,
        "GET /agents": "agent.view",
        "POST /agents/{name}/run": "agent.execute",
        "GET /tools": "tool.view",
        "POST /tools/{name}/call": "tool.call",
        "GET /flows": "flow.view",
        "POST /flows/{name}/run": "flow.execute",
        "GET /conversations": "data.read",
        "GET /conversations/{id}": "data.read",
        "DELETE /conversations/{id}": "data.delete",
        "POST /v1/chat/completions": "agent.execute",
        "POST /v1/responses": "agent.execute",
        "GET /v1/models": "agent.execute",
        "GET /v1/models/{id}": "agent.execute",
        "GET /metrics": "metrics.view",
        "GET /audit": "audit.view",
        # Admin API (tframex_asgi.admin.routes).
        "GET /admin/users": "user.manage",
        "POST /admin/users": "user.manage",
        "GET /admin/users/{id}": "user.manage",
        "PATCH /admin/users/{id}": "user.manage",
        "GET /admin/users/{id}/roles": "user.manage",
        "POST /admin/users/{id}/roles": "role.manage",
        "DELETE /admin/users/{id}/roles/{role}": "role.manage",
        "GET /admin/roles": "role.manage",
        "POST /admin/roles": "role.manage",
        "DELETE /admin/roles/{name}": "role.manage",
        "GET /admin/api-keys": "user.manage",
        "POST /admin/api-keys": "user.manage",
        "DELETE /admin/api-keys/{id}": "user.manage",
    }
)

ANY_METHOD: Final = "*"
# What "*" (or a rule without a method) covers. OPTIONS/TRACE/CONNECT are never implied.
STANDARD_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})

_METHOD = re.compile(r"^[A-Z]{1,16}$")
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(?::(str|int|path|uuid))?\}$")
# Characters that mean something else to some server, proxy or framework in a decoded path.
_BAD_CHARS = frozenset("\\;%?#") | frozenset(chr(c) for c in (*range(32), 127))


@dataclass(frozen=True, slots=True)
class Segment:
    kind: int  # 0 literal, 1 single-segment parameter, 2 rest-of-path parameter
    text: str  # casefolded literal, or the convertor name for parameters


def parse_rule(rule: str) -> tuple[str, str]:
    """``"POST /agents/{name}/run"`` -> ``("POST", "/agents/{name}/run")``; a bare template means ``*``."""
    parts = rule.split()
    if len(parts) == 1:
        method, template = ANY_METHOD, parts[0]
    elif len(parts) == 2:
        method, template = parts
    else:
        raise ValueError(f"expected 'METHOD /template', got {rule!r}")
    if method != ANY_METHOD and not _METHOD.match(method):
        raise ValueError(f"bad HTTP method {method!r} in {rule!r} (use upper case, or '*')")
    if not template.startswith("/"):
        raise ValueError(f"the template must start with '/': {rule!r}")
    return method, template


def compile_template(template: str) -> tuple[str, tuple[Segment, ...]]:
    """``(template without a trailing slash, its segments)``; ValueError for a segment that a
    server, proxy or framework could read another way."""
    pieces = template.split("/")[1:]
    if pieces and pieces[-1] == "":
        pieces.pop()
    segments: list[Segment] = []
    for i, piece in enumerate(pieces):
        param = _PARAM.match(piece)
        if param:
            convertor = param.group(2) or "str"
            if convertor == "path" and i != len(pieces) - 1:
                raise ValueError(f"a {{name:path}} parameter must be the last segment: {template!r}")
            segments.append(Segment(2 if convertor == "path" else 1, convertor))
        elif not piece or piece in (".", "..") or "{" in piece or "}" in piece or any(c in _BAD_CHARS for c in piece):
            raise ValueError(f"bad segment {piece!r} in template {template!r}")
        else:
            segments.append(Segment(0, piece.casefold()))
    return "/" + "/".join(pieces), tuple(segments)


class RuleSet:
    """The rules of one route table, compiled: refuses a rule that is malformed or matches
    exactly what a rule already in it matches (``/a/{x}`` and ``/a/{y}``)."""

    def __init__(self, rules: Iterable[str] = ()) -> None:
        self._by_method: dict[str, set[tuple[Segment, ...]]] = {}
        for rule in rules:
            self.add(rule)

    def add(self, rule: str) -> tuple[str, str, tuple[Segment, ...]]:
        """``(method, template, segments)`` of ``rule``, now part of the set."""
        method, raw_template = parse_rule(rule)
        template, segments = compile_template(raw_template)
        bucket = self._by_method.setdefault(method, set())
        if segments in bucket:
            raise ValueError(f"duplicate route rule {method} {template}")
        bucket.add(segments)
        return method, template, segments

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(self._by_method)

    def __len__(self) -> int:
        return sum(len(b) for b in self._by_method.values())


def merge_rules(
    routes: Mapping[str, str] | None = None, *, public_paths: Iterable[str] = (), endpoint_routes: bool = True
) -> list[tuple[str, str]]:
    """The endpoint's rules, then ``public_paths`` (GET/HEAD), then ``routes``: a later rule for
    the same method and template (case and trailing slash aside) replaces an earlier one."""
    merged: dict[tuple[str, str], tuple[str, str]] = {}

    def put(rule: str, value: str) -> None:
        method, template = parse_rule(rule)
        merged[(method, template.rstrip("/").casefold() or "/")] = (f"{method} {template}", value)

    for rule, value in ENDPOINT_ROUTES.items() if endpoint_routes else ():
        put(rule, value)
    for path in public_paths:
        put(f"GET {path}", PUBLIC)
    for rule, value in (routes or {}).items():
        put(rule, value)
    return list(merged.values())
