"""``memory://`` looks rows up through indexes (no scan per lookup) and keeps them right through
writes, updates, cascading deletes and pruning: it answers as SQLite does after random operations."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tframex_asgi.errors import ConflictError
from tframex_asgi.storage import BaseStorage, open_storage
from tframex_asgi.storage import memory as memory_module


async def test_lookups_by_column_check_only_matching_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """With 2,000 users and keys, a lookup by key prefix, by user or by conversation compares
    only the rows it returns: the cost of a request does not grow with the table."""
    store = open_storage("memory://")
    users = [{"id": str(uuid.uuid4()), "username": f"u{i}"} for i in range(2000)]
    await store.write_many("users", users)
    keys = [
        {"user_id": u["id"], "prefix": f"tfx_{i:012x}", "key_hash": f"sha256:{i}", "scopes": []}
        for i, u in enumerate(users)
    ]
    await store.write_many("api_keys", keys)
    conv = await store.write("conversations", {"agent_name": "a", "user_id": users[7]["id"]})
    await store.write_many("messages", [{"conversation_id": conv, "role": "user", "content": str(i)} for i in range(3)])
    await store.write("conversations", {"agent_name": "b", "user_id": users[8]["id"]})

    compared = 0
    real = memory_module._matches

    def counting(row: Any, filters: Any) -> bool:
        nonlocal compared
        compared += 1
        return real(row, filters)

    monkeypatch.setattr(memory_module, "_matches", counting)
    rows = await store.read("api_keys", {"prefix": "tfx_0000000004d2"}, limit=1)
    assert [r["key_hash"] for r in rows] == ["sha256:1234"] and compared == 1
    compared = 0
    assert await store.read("api_keys", {"prefix": "tfx_nope"}) == [] and compared == 0
    assert len(await store.read("users", {"username": "u1999"})) == 1 and compared == 1
    compared = 0
    assert [r["agent_name"] for r in await store.read("conversations", {"user_id": users[7]["id"]})] == ["a"]
    assert len(await store.read("messages", {"conversation_id": conv})) == 3
    assert await store.count("api_keys", {"user_id": users[5]["id"]}) == 1
    assert compared == 5
    # A column filtered on for the first time gets its index then (one scan), and keeps it.
    assert len(await store.read("api_keys", {"key_hash": "sha256:77"})) == 1 and compared == 6


async def test_unique_is_still_enforced_within_a_batch_and_against_stored_rows() -> None:
    store = open_storage("memory://")
    await store.write("users", {"username": "ann", "email": "a@x"})
    with pytest.raises(ConflictError):
        await store.write("users", {"username": "ann"})
    with pytest.raises(ConflictError):
        await store.write_many("users", [{"username": "bob", "email": "b@x"}, {"username": "cy", "email": "b@x"}])
    assert await store.count("users") == 1  # the refused batch wrote nothing
    bob = await store.write("users", {"username": "bob"})
    with pytest.raises(ConflictError):
        await store.update("users", bob, {"username": "ann"})
    assert await store.update("users", bob, {"username": "bobby"})
    await store.write("users", {"username": "bob"})  # the old value is free again
    assert [r["username"] for r in await store.read("users", {"username": "bobby"})] == ["bobby"]


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [str(r["id"]) for r in rows]


async def _apply(store: BaseStorage, op: tuple[Any, ...]) -> Any:
    kind, *args = op
    try:
        if kind == "write":
            return await store.write(args[0], args[1])
        if kind == "update":
            return await store.update(args[0], args[1], args[2])
        if kind == "delete":
            return await store.delete(args[0], args[1])
        if kind == "delete_where":
            return await store.delete_where(args[0], args[1])
        return await store.delete_older_than(args[0], args[1], args[2])
    except ConflictError:
        return "conflict"  # which constraint is named first when two fail differs by backend


def _random_ops(rng: random.Random, n: int) -> list[tuple[Any, ...]]:
    users = [str(uuid.uuid4()) for _ in range(6)]
    convs = [str(uuid.uuid4()) for _ in range(8)]
    t0 = datetime(2026, 1, 1)
    ops: list[tuple[Any, ...]] = [("write", "users", {"id": u, "username": f"u{i}"}) for i, u in enumerate(users)]
    for _ in range(n):
        pick = rng.random()
        new_id, user, conv = str(uuid.uuid4()), rng.choice(users), rng.choice(convs)
        if pick < 0.3:
            when = t0 + timedelta(minutes=rng.randrange(100))
            ops.append(("write", "conversations", {"id": conv, "agent_name": "a", "user_id": user, "created_at": when}))
        elif pick < 0.5:
            ops.append(("write", "messages", {"id": new_id, "conversation_id": conv, "role": "user"}))
        elif pick < 0.6:
            ops.append(("write", "agent_executions", {"id": new_id, "conversation_id": conv, "agent_name": "a"}))
        elif pick < 0.7:
            key = {"id": new_id, "user_id": user, "prefix": f"p{rng.randrange(12)}", "key_hash": "h"}
            ops.append(("write", "api_keys", key))
        elif pick < 0.8:
            ops.append(("update", "conversations", conv, {"user_id": rng.choice([*users, None])}))
        elif pick < 0.87:
            ops.append(("delete", "conversations", conv))
        elif pick < 0.92:
            ops.append(("delete", "users", user))
        elif pick < 0.96:
            ops.append(("delete_where", "api_keys", {"user_id": user}))
        else:
            ops.append(("delete_older_than", "conversations", "created_at", t0 + timedelta(minutes=rng.randrange(100))))
    return ops


async def _answers(store: BaseStorage) -> list[Any]:
    out: list[Any] = []
    for user in await store.read("users"):
        uid = str(user["id"])
        out.append(_ids(await store.read("conversations", {"user_id": uid})))
        out.append(_ids(await store.read("api_keys", {"user_id": uid})))
    for conv in await store.read("conversations"):
        cid = str(conv["id"])
        out.append(_ids(await store.read("messages", {"conversation_id": cid})))
        out.append(await store.count("agent_executions", {"conversation_id": cid}))
    out.append(_ids(await store.read("conversations", {"user_id": None})))
    out.append(await store.count("agent_executions", {"conversation_id": None}))
    for i in range(12):
        out.append(_ids(await store.read("api_keys", {"prefix": f"p{i}"})))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_memory_answers_as_sqlite_after_random_operations(seed: int, tmp_path: Path) -> None:
    memory, sqlite = open_storage("memory://"), open_storage(f"sqlite:///{tmp_path}/model.db")
    for store in (memory, sqlite):
        await store.connect()
        await store.migrate()
    try:
        for i, op in enumerate(_random_ops(random.Random(seed), 250)):
            expected = await _apply(sqlite, op)
            got = await _apply(memory, op)
            assert got == expected, (i, op)
            if i % 25 == 0:
                assert await _answers(memory) == await _answers(sqlite), i
        assert await _answers(memory) == await _answers(sqlite)
    finally:
        for store in (memory, sqlite):
            await store.close()
