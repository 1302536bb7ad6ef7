"""Path normalisation that cannot be talked around, and a (method, path) -> value route table.

ASGI servers hand us two views of the request path: ``scope["path"]`` (percent-decoded; uvicorn
turns ``%2F`` into ``/`` and ``%2e%2e`` into ``..``) and ``scope["raw_path"]`` (as sent). Starlette
routes on the decoded one, other frameworks on the raw one. :func:`normalize_path` therefore
accepts a path only when both views name the same segments, and rejects (``None``) anything that
a server, proxy or framework could read two ways: dot segments, empty segments (``//``), encoded
slashes or backslashes, double encoding, ``;`` parameters, control characters. It does not guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import unquote_to_bytes

from tframex_asgi.catalog.routes import ANY_METHOD, STANDARD_METHODS, RuleSet, Segment, parse_rule
from tframex_asgi.routetrie import UUID_RE as _UUID
from tframex_asgi.routetrie import SegmentTrie
from tframex_asgi.types import Scope
from tframex_asgi.util import memo_put

__all__ = [
    "ANY_METHOD",
    "MATCH_KEY",
    "STANDARD_METHODS",
    "STATE_KEY",
    "RouteTable",
    "match_early",
    "normalize_path",
    "parse_rule",
    "route_path",
]

T = TypeVar("T")

MAX_PATH = 8192

# Characters that mean something else to some server, proxy or framework in a decoded path
# (route templates may not hold them either: tframex_asgi.catalog.routes).
_BAD_RE = re.compile(r"[\\;%?#\x00-\x1f\x7f]")
# Encodings that change the segment structure when a second party decodes them.
_BAD_ENCODINGS = (b"%2f", b"%5c", b"%00", b"%25")


def route_path(scope: Scope) -> str:
    """The path Starlette routes on: ``path`` without ``root_path`` (as ``get_route_path`` does)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "") or ""
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path


# A path that every reader sees the same way: segments of unreserved characters, none of them
# only dots. Such a path (with the same raw_path, or none, and no root_path) is its own
# normal form; everything else takes the full check below.
_PLAIN = re.compile(r"(?:/[A-Za-z0-9_~.\-]*[A-Za-z0-9_~\-][A-Za-z0-9_~.\-]*)+/?")
# scope["tframex"] key caching the result: (path, raw_path, root_path, result).
STATE_KEY = "normalized_path"
_MEMO_SIZE = 4096
_MEMO_PATH = 256


def normalize_path(scope: Scope) -> str | None:
    """The canonical route path of ``scope`` (no trailing slash), or ``None`` when malformed.

    Computed once per request: the result is kept in ``scope["tframex"]`` (when the scope has
    one) with the ``path``, ``raw_path`` and ``root_path`` it was computed from, and reused
    while those are the very same objects (a Starlette ``Mount`` changing them forces a fresh
    computation).
    """
    state = scope.get("tframex")
    raw = scope.get("raw_path")
    if state is None or type(raw) is bytearray:  # a bytearray can change under the same identity
        return _normalize(scope)
    path = scope.get("path")
    root = scope.get("root_path")
    cached = state.get(STATE_KEY)
    if cached is not None and cached[0] is path and cached[1] is raw and cached[2] is root:
        result: str | None = cached[3]
        return result
    result = _normalize(scope)
    state[STATE_KEY] = (path, raw, root, result)
    return result


def _normalize(scope: Scope) -> str | None:
    path = scope.get("path")
    if not isinstance(path, str) or len(path) > MAX_PATH:
        return None
    raw = scope.get("raw_path")
    if (
        not scope.get("root_path")
        and _PLAIN.fullmatch(path) is not None
        and (raw is None or (type(raw) is bytes and raw == path.encode("ascii")))
    ):
        return path[:-1] if len(path) > 1 and path[-1] == "/" else path
    return _normalize_slow(scope, path, raw)


def _normalize_slow(scope: Scope, path: str, raw: object) -> str | None:
    if raw is not None:
        if not isinstance(raw, bytes | bytearray):
            return None
        raw = bytes(raw).split(b"?", 1)[0]  # some servers leave the query on raw_path
        try:
            if b"%" in raw:
                lowered = raw.lower()
                if any(bad in lowered for bad in _BAD_ENCODINGS):
                    return None
                decoded = unquote_to_bytes(raw).decode("utf-8")
            else:
                decoded = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        root = scope.get("root_path", "") or ""
        # Servers disagree on whether path includes root_path; raw_path always holds the full target.
        if decoded != path and decoded != root + path:
            return None
    rpath = route_path(scope) or "/"
    if rpath[0] != "/" or _BAD_RE.search(rpath) or "//" in rpath:
        return None
    if len(rpath) > 1 and rpath[-1] == "/":
        rpath = rpath[:-1]  # one trailing slash is the same route (Starlette redirects it)
    probe = rpath + "/"
    if "/./" in probe or "/../" in probe:
        return None
    return rpath


@dataclass(frozen=True, slots=True)
class _Rule(Generic[T]):
    template: str
    segments: tuple[Segment, ...]
    value: T

    @property
    def specificity(self) -> tuple[int, ...]:
        # Literal beats parameter beats rest-of-path, position by position (so /admin/{x} wins
        # over /{a}/{b} for "/admin/users", whatever order the rules were added in).
        return (*(s.kind for s in self.segments), 3)

    def matches(self, parts: list[str]) -> bool:
        """``parts``: the casefolded segments of a normalised path."""
        segments = self.segments
        if len(parts) < len(segments) or (len(parts) > len(segments) and (not segments or segments[-1].kind != 2)):
            return False
        for seg, part in zip(segments, parts, strict=False):
            if seg.kind == 0:
                if part != seg.text:
                    return False
            elif seg.kind == 1 and (
                (seg.text == "int" and not part.isdigit()) or (seg.text == "uuid" and not _UUID.match(part))
            ):
                return False
        return True


class RouteTable(Generic[T]):
    """Rules ``"METHOD /template"`` -> value, matched against normalised paths.

    Literal segments compare case-insensitively, so a case variant of a route always needs the
    same permission as the route itself (whether or not the app is case-sensitive). ``HEAD``
    falls back to ``GET``. The most specific template wins; a method-specific rule beats ``*``.
    """

    def __init__(self, rules: Mapping[str, T] | Iterable[tuple[str, T]] = ()) -> None:
        self._rules = RuleSet()
        # One segment trie per method: matching cost does not grow with the number of rules.
        self._tries: dict[str, SegmentTrie[_Rule[T]]] = {}
        self._exact: dict[tuple[str, str], _Rule[T]] = {}
        # (method, path) -> answer of match(), for the paths seen most: bounded, and filled only
        # up to its cap (junk paths cannot evict the real ones, they just are not remembered).
        self._memo: dict[tuple[str, str], tuple[str, T] | None] = {}
        items = rules.items() if isinstance(rules, Mapping) else rules
        for rule, value in items:
            self.add(rule, value)

    def add(self, rule: str, value: T) -> None:
        method, template, segments = self._rules.add(rule)
        compiled = _Rule(template, segments, value)
        trie = self._tries.get(method)
        if trie is None:
            trie = self._tries[method] = SegmentTrie()
        trie.add(compiled)
        self._memo.clear()
        if all(s.kind == 0 for s in segments):
            self._exact[(method, "/" + "/".join(s.text for s in segments))] = compiled

    def __len__(self) -> int:
        return len(self._rules)

    def _find(self, method: str, key: str, parts: list[str]) -> _Rule[T] | None:
        exact = self._exact.get((method, key))
        if exact is not None:
            return exact
        trie = self._tries.get(method)
        return None if trie is None else trie.find(parts)

    def match(self, method: str, path: str) -> tuple[str, T] | None:
        """``(template, value)`` for a normalised ``path``, or ``None`` when no rule covers it."""
        memo_key = (method, path)
        try:
            return self._memo[memo_key]
        except KeyError:
            pass
        answer = self._match(method, path)
        if len(path) <= _MEMO_PATH:
            memo_put(self._memo, memo_key, answer, _MEMO_SIZE, evict=False)
        return answer

    def _match(self, method: str, path: str) -> tuple[str, T] | None:
        key = path.casefold()
        parts = key.split("/")[1:]
        if parts == [""]:
            parts = []
        for candidate in (method, "GET") if method == "HEAD" else (method,):
            found = self._find(candidate, key, parts)
            if found is None and candidate in STANDARD_METHODS:
                found = self._find(ANY_METHOD, key, parts)
            if found is not None:
                return found.template, found.value
        return None

    def methods_for(self, path: str) -> frozenset[str]:
        """Methods with a rule for ``path`` (for error messages and docs)."""
        methods = {m for m in (*self._rules.methods, *STANDARD_METHODS) if self.match(m, path) is not None}
        return frozenset(methods)


# scope["tframex"] key of the early route match: (table, scope path object, normalised path,
# match answer), reused by the authorization layer when the table and path are the same.
MATCH_KEY = "route_match"


def match_early(scope: Scope, state: Any, table: RouteTable[T], method: str) -> None:
    """Match the route template once, in the outermost layer, so every layer and metric has
    ``state["route"]`` (a 401 from authentication or a 429 from the rate limiter included);
    authorization reuses the answer instead of matching again."""
    path = normalize_path(scope)
    found = table.match(method, path) if path is not None else None
    state[MATCH_KEY] = (table, scope.get("path"), path, found)
    if found is not None:
        state["route"] = found[0]
