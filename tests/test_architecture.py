"""The package's import graph keeps its floors.

Every module of ``tframex_asgi`` sits on a floor (:data:`FLOORS`, the most specific prefix wins)
and imports only from its own floor or lower ones, with no circle anywhere, and no module is over
400 lines. An import counts wherever it is written, at module level or inside a function (a
function-level import is a circle waiting for the first call); only ``if TYPE_CHECKING:`` blocks
are exempt. Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``, so those count too
(for an importer outside them). Imports of a computed name (``importlib.import_module(name)``)
cannot be seen here.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import tframex_asgi

PACKAGE = "tframex_asgi"
ROOT = Path(tframex_asgi.__file__).parent
MAX_LINES = 400

# Module prefix (below tframex_asgi) -> floor, lowest first. "__init__" is tframex_asgi itself.
FLOORS: dict[str, int] = {
    # 0: foundation
    "types": 0,
    "clock": 0,
    "errors": 0,
    "timefmt": 0,
    "catalog": 0,
    "util": 0,
    # 1: configuration, pure frozen data
    "config": 1,
    # 2: infrastructure
    "events": 2,
    "http": 2,
    "jsonbody": 2,
    "storable": 2,
    "compat": 2,
    "lifespan": 2,
    "routetrie": 2,
    "paths": 2,
    "openai_shape": 2,
    "context": 2,
    "ids": 2,
    "timing": 2,
    "storage": 2,
    # 3: features
    "auth": 3,
    "rbac": 3,
    "ratelimit": 3,
    "audit": 3,
    "metrics": 3,
    "mcp": 3,
    "llm": 3,
    "bodylimit": 3,
    # 4: assembly
    "services": 4,
    "stack": 4,
    "layers": 4,
    "middleware": 4,
    "admin": 4,
    "routes_layer": 4,
    # 5: top
    "endpoint": 5,
    "inprocess": 5,
    "app": 5,
    "demo": 5,
    "defaults": 5,
    "cli": 5,
    "__main__": 5,
    "__init__": 5,
}
FEATURES = 3
# The one upward import kept on purpose, each resolved on first access by a module __getattr__
# (never when the package is imported), with the reason it stays.
LAZY_ALIASES: dict[tuple[str, str], str] = {
    ("tframex_asgi.metrics", "tframex_asgi.middleware"): (
        "tframex_asgi.metrics.MetricsMiddleware: the seed's name, documented in the migration guide"
    ),
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    how: str  # "module level", "in a function" or "package __init__ of <module>"

    def __str__(self) -> str:
        return f"{self.source}:{self.line} -> {self.target} ({self.how})"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def floor_key(module: str) -> str | None:
    """The :data:`FLOORS` key of ``module``: its most specific listed prefix."""
    if module == PACKAGE:
        return "__init__"
    parts = module.removeprefix(PACKAGE + ".").split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in FLOORS:
            return key
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """``(imported name, line, inside a function)`` of every import outside TYPE_CHECKING blocks."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.depth = 0
        self.found: list[tuple[str, int, bool]] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, node.lineno, self.depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base_parts = self.package.split(".")
            base_parts = base_parts[: len(base_parts) - node.level + 1]
            base = ".".join([*base_parts, node.module] if node.module else base_parts)
        else:
            base = node.module or ""
        for alias in node.names:
            # ``from pkg import name`` imports the module pkg.name when there is one.
            self.found.append((f"{base}.{alias.name}", node.lineno, self.depth > 0))


def _resolve(name: str) -> str | None:
    """The package module ``name`` imports (its longest existing prefix), or None if not ours."""
    known = modules()
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _ancestors(module: str) -> Iterator[str]:
    parts = module.split(".")
    for n in range(2, len(parts)):  # tframex_asgi itself is running before any of its modules
        yield ".".join(parts[:n])


@cache
def edges() -> tuple[Edge, ...]:
    out: dict[tuple[str, str], Edge] = {}
    for module, path in modules().items():
        visitor = _Imports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        running = {module, *_ancestors(module)}  # inits already under way when this module runs
        for name, line, lazy in visitor.found:
            target = _resolve(name)
            if target is None or target == module or (lazy and (module, target) in LAZY_ALIASES):
                continue
            found = [(target, "in a function" if lazy else "module level")]
            found += [(a, f"package __init__ of {target}") for a in _ancestors(target) if a not in running]
            for dst, how in found:
                out.setdefault((module, dst), Edge(module, dst, line, how))
    return tuple(out.values())


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _report(title: str, lines: list[str]) -> str:
    return f"{title} ({len(lines)}):\n  " + "\n  ".join(lines)


def test_every_module_has_a_floor() -> None:
    missing = sorted(m for m in modules() if floor_key(m) is None)
    assert not missing, _report("modules on no floor (add them to FLOORS)", missing)


def test_no_import_goes_up_a_floor() -> None:
    upward = []
    for edge in edges():
        source, target = floor_key(edge.source), floor_key(edge.target)
        if source is not None and target is not None and FLOORS[target] > FLOORS[source]:
            upward.append(f"{edge}   [floor {FLOORS[source]} -> {FLOORS[target]}]")
    assert not upward, _report("imports from a lower floor to a higher one", sorted(upward))


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for edge in edges():
        graph[edge.source].add(edge.target)
    lines = []
    for component in _cycles(graph):
        members = set(component)
        lines.append("cycle: " + ", ".join(component))
        lines += [f"    {e}" for e in edges() if e.source in members and e.target in members]
    assert not lines, _report("import circles, with the edges inside each", lines)


def test_feature_packages_do_not_import_each_other_in_a_circle() -> None:
    """auth -> rbac and rbac -> auth through different modules is still a circle between them."""

    def package(module: str) -> str:
        return module.removeprefix(PACKAGE + ".").split(".")[0]

    graph: dict[str, set[str]] = {}
    crossing: list[Edge] = []
    for edge in edges():
        source, target = floor_key(edge.source), floor_key(edge.target)
        if source is None or target is None or FLOORS[source] != FEATURES or FLOORS[target] != FEATURES:
            continue
        a, b = package(edge.source), package(edge.target)
        if a != b:
            graph.setdefault(a, set()).add(b)
            crossing.append(edge)
    lines = []
    for component in _cycles(graph):
        members = set(component)
        lines.append("cycle: " + ", ".join(component))
        lines += [f"    {e}" for e in crossing if package(e.source) in members and package(e.target) in members]
    assert not lines, _report("circles between feature packages", lines)


def test_no_module_over_400_lines() -> None:
    long = []
    for module, path in modules().items():
        count = len(path.read_text(encoding="utf-8").splitlines())
        if count > MAX_LINES:
            long.append(f"{module}: {count} lines")
    assert not long, _report(f"modules over {MAX_LINES} lines", sorted(long))
