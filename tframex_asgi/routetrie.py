"""A segment trie over route templates, so matching a path costs the same with 10 or 1,000 rules.

Trying the rules one by one (most specific first) on a memo miss costs time per rule, which with
1,000 rules and paths with ids becomes most of a request's cost. Here a path walks one node per
segment: the literal child (a dict lookup), the parameter children whose convertor accepts the
segment (``str``, ``int``, ``uuid``), and a rest-of-path rule. Every rule reached is a match; the
winner is the one a linear scan would pick, the lowest (specificity, insertion order), so both
give the same answers (``tests/test_routetrie.py`` checks that against the scan).
"""

from __future__ import annotations

import re
from typing import Any, Generic, TypeVar

__all__ = ["UUID_RE", "SegmentTrie"]

R = TypeVar("R")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _accepts(convertor: str, part: str) -> bool:
    if convertor == "int":
        return part.isdigit()
    if convertor == "uuid":
        return UUID_RE.match(part) is not None
    return True


class _Node(Generic[R]):
    __slots__ = ("literal", "params", "rest", "rule")

    def __init__(self) -> None:
        self.literal: dict[str, _Node[R]] = {}
        self.params: dict[str, _Node[R]] = {}  # convertor -> child
        self.rule: tuple[tuple[Any, ...], R] | None = None  # (rank, rule) ending here
        self.rest: tuple[tuple[Any, ...], R] | None = None  # a {name:path} rule ending here


class SegmentTrie(Generic[R]):
    """Rules (objects with ``segments``, each ``kind`` 0/1/2 and ``text``, and ``specificity``)."""

    def __init__(self) -> None:
        self._root: _Node[R] = _Node()
        self._count = 0

    def add(self, rule: Any) -> None:
        rank = (rule.specificity, self._count)
        self._count += 1
        node = self._root
        for seg in rule.segments:
            if seg.kind == 2:  # rest of path: always the last segment
                node.rest = (rank, rule)
                return
            children = node.literal if seg.kind == 0 else node.params
            child = children.get(seg.text)
            if child is None:
                child = children[seg.text] = _Node()
            node = child
        node.rule = (rank, rule)

    def find(self, parts: list[str]) -> R | None:
        """The most specific rule matching the casefolded segments ``parts``, or None."""
        best: tuple[tuple[Any, ...], R] | None = None
        end = len(parts)
        stack = [(self._root, 0)]
        while stack:
            node, depth = stack.pop()
            if depth == end:
                found = node.rule
            else:
                part = parts[depth]
                child = node.literal.get(part)
                if child is not None:
                    stack.append((child, depth + 1))
                for convertor, param in node.params.items():
                    if _accepts(convertor, part):
                        stack.append((param, depth + 1))
                found = node.rest  # a rest-of-path rule takes this segment and any after it
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        return None if best is None else best[1]
