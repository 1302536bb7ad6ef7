"""Property tests: any text and JSON either round-trips unchanged or fails with a clear error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tframex_asgi.errors import ValidationError
from tframex_asgi.storage import open_storage

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _storable(text: str) -> bool:
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    return []


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgresql"])
def test_text_and_json_round_trip_or_fail_clearly(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path}/h.db"}.get(kind)
    url = url or request.getfixturevalue("pg_schema_dsn")
    with asyncio.Runner() as runner:
        store = open_storage(url)
        runner.run(store.connect())
        conv = runner.run(store.write("conversations", {"agent_name": "a"}))

        @settings(max_examples=60, deadline=None)
        @given(text=st.text(max_size=200), meta=JSON)
        def check(text: str, meta: Any) -> None:
            row = {"conversation_id": conv, "role": "user", "content": text, "metadata": {"m": meta}}
            ok = _storable(text) and all(_storable(s) for s in _strings(meta))
            try:
                mid = runner.run(store.write("messages", row))
            except ValidationError as exc:
                assert not ok, exc
                return
            assert ok
            (got,) = runner.run(store.read("messages", {"id": mid}))
            assert got["content"] == text and got["metadata"] == {"m": meta}

        try:
            check()
        finally:
            runner.run(store.close())
