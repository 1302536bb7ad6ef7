"""The route table's segment trie answers as the linear scan it replaced (most specific rule, then
the one added first), and looks at only the rules on the path's own branch."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from tframex_asgi import routetrie
from tframex_asgi.catalog.routes import compile_template, parse_rule
from tframex_asgi.paths import RouteTable, _Rule

LITERALS = ["a", "b", "agents", "run", "7", "x-y"]
PARAMS = ["{p}", "{n:int}", "{u:uuid}"]
UID = str(uuid.UUID(int=7))


def scan(rules: list[tuple[str, str]], method: str, path: str) -> tuple[str, str] | None:
    """The old algorithm: rules of the method sorted by specificity (stable), first that matches."""
    compiled = []
    for rule, value in rules:
        m, raw = parse_rule(rule)
        if m == method:
            template, segments = compile_template(raw)
            compiled.append(_Rule(template, segments, value))
    compiled.sort(key=lambda r: r.specificity)
    parts = path.casefold().split("/")[1:]
    parts = [] if parts == [""] else parts
    for r in compiled:
        if r.matches(parts):
            return r.template, r.value
    return None


segment = st.sampled_from(LITERALS + PARAMS)
template = st.lists(segment, max_size=4).map(lambda s: "/" + "/".join(s)) | st.lists(
    segment, min_size=1, max_size=3
).map(lambda s: "/" + "/".join([*s, "{rest:path}"]))
path_part = st.sampled_from([*LITERALS, "12", UID, "zz"])


@settings(max_examples=300, deadline=None)
@given(
    templates=st.lists(template, min_size=1, max_size=12, unique=True),
    paths=st.lists(st.lists(path_part, max_size=5), min_size=1, max_size=8),
)
def test_trie_answers_as_the_linear_scan(templates: list[str], paths: list[list[str]]) -> None:
    rules = []
    seen = set()
    for i, raw in enumerate(templates):
        key = compile_template(raw)[1]
        if key in seen:  # the table refuses two rules with the same segments
            continue
        seen.add(key)
        rules.append((f"GET {raw}", f"v{i}"))
    table = RouteTable(rules)
    for parts in paths:
        path = "/" + "/".join(parts)
        assert table.match("GET", path) == scan(rules, "GET", path), (rules, path)


def test_a_miss_looks_only_at_the_rules_on_its_branch(monkeypatch) -> None:
    """1,000 rules under distinct first segments: matching one path checks a handful of
    convertors, not 1,000 rules (so the cost is the same with 10 rules)."""
    rules = {f"GET /svc{i}/items/{{id:int}}/detail": f"p{i}" for i in range(1000)}
    rules["GET /svc5/items/{name}"] = "named"
    table = RouteTable(rules)
    checked = 0
    real = routetrie._accepts

    def counting(convertor: str, part: str) -> bool:
        nonlocal checked
        checked += 1
        return real(convertor, part)

    monkeypatch.setattr(routetrie, "_accepts", counting)
    assert table.match("GET", "/svc999/items/42/detail") == ("/svc999/items/{id:int}/detail", "p999")
    assert table.match("GET", "/svc5/items/abc") == ("/svc5/items/{name}", "named")
    assert table.match("GET", "/svc5/items/abc/detail") is None
    assert table.match("GET", "/nope/items/1/detail") is None
    assert checked <= 6, checked
