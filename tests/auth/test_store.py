"""IdentityStore: users and API keys through the storage layer; secrets never come back out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tframex_asgi.auth.base import CredentialError
from tframex_asgi.auth.store import KEY_PATTERN, IdentityStore
from tframex_asgi.clock import ManualClock
from tframex_asgi.errors import ConflictError, ValidationError
from tframex_asgi.storage import open_storage


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("pg_schema_dsn")  # a sync fixture: resolve it outside the loop
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/auth.db"


@pytest.fixture
async def store(store_url, fast_hasher):
    url = store_url
    storage = open_storage(url)
    await storage.connect()
    s = IdentityStore(storage, ManualClock(), hasher=fast_hasher)
    yield s
    await s.drain()
    await storage.close()


async def test_users_round_trip_without_hashes(store: IdentityStore) -> None:
    row = await store.create_user("alice", email="a@example.com", password="pw-1")
    assert "password_hash" not in row and row["username"] == "alice"
    stored = (await store.storage.read("users", {"id": row["id"]}))[0]
    assert stored["password_hash"].startswith("$argon2id$")
    assert "pw-1" not in str(stored)
    assert (await store.get_user(row["id"]))["email"] == "a@example.com"
    assert (await store.get_user_by_username("alice"))["id"] == row["id"]
    assert all("password_hash" not in u for u in await store.list_users())
    assert await store.get_user("not-a-uuid") is None


async def test_duplicates_conflict(store: IdentityStore) -> None:
    await store.create_user("alice", email="a@example.com")
    with pytest.raises(ConflictError):
        await store.create_user("alice")
    with pytest.raises(ConflictError):
        await store.create_user("bob", email="a@example.com")


@pytest.mark.parametrize("name", ["", "a:b", "tab\there", "x" * 256, "nul\x00"])
async def test_bad_usernames_refused(store: IdentityStore, name: str) -> None:
    with pytest.raises(ValidationError):
        await store.create_user(name)


async def test_password_check(store: IdentityStore) -> None:
    row = await store.create_user("alice", password="right")
    assert (await store.check_password("alice", "right"))["id"] == row["id"]
    for user, pw in [("alice", "wrong"), ("nobody", "right"), ("", "right"), ("a" * 300, "x")]:
        with pytest.raises(CredentialError) as exc:
            await store.check_password(user, pw)
        assert exc.value.reason == "invalid_credentials"
    await store.set_active(row["id"], False)
    with pytest.raises(CredentialError) as exc:
        await store.check_password("alice", "right")
    assert exc.value.reason == "disabled_user"
    # Disabled-ness is only revealed to someone who knows the password.
    with pytest.raises(CredentialError) as exc:
        await store.check_password("alice", "wrong")
    assert exc.value.reason == "invalid_credentials"


async def test_user_without_password_cannot_log_in(store: IdentityStore) -> None:
    await store.create_user("keyonly")
    with pytest.raises(CredentialError):
        await store.check_password("keyonly", "")


async def test_api_key_shape_and_storage(store: IdentityStore) -> None:
    user = await store.create_user("alice")
    row, key = await store.create_api_key(user["id"], name="ci", scopes=["agent.view", "agent.view"])
    match = KEY_PATTERN.match(key)
    assert match and match.group(1) == row["prefix"]
    assert len(key) - len(row["prefix"]) - 1 == 43  # 32 random bytes, base64url
    assert "key_hash" not in row and row["scopes"] == ["agent.view"]
    stored = (await store.storage.read("api_keys", {"id": row["id"]}))[0]
    assert key not in str(stored) and stored["key_hash"].startswith("sha256:")
    listed = await store.list_api_keys(user["id"])
    assert [k["id"] for k in listed] == [row["id"]] and "key_hash" not in listed[0]
    key_row, key_user = await store.check_api_key(key)
    assert key_row["id"] == row["id"] and key_user["id"] == user["id"]


async def test_two_keys_never_collide(store: IdentityStore) -> None:
    user = await store.create_user("alice")
    keys = {(await store.create_api_key(user["id"]))[1] for _ in range(5)}
    assert len(keys) == 5


async def test_api_key_rejections(store: IdentityStore) -> None:
    user = await store.create_user("alice")
    row, key = await store.create_api_key(user["id"])
    prefix = row["prefix"]

    async def reason(candidate: str) -> str:
        with pytest.raises(CredentialError) as exc:
            await store.check_api_key(candidate)
        return exc.value.reason

    assert await reason(key[:-1] + ("A" if key[-1] != "A" else "B")) == "invalid_credentials"
    assert await reason(f"{prefix}_" + "A" * 43) == "invalid_credentials"  # right prefix, wrong secret
    assert await reason("tfx_000000000000_" + "A" * 43) == "invalid_credentials"
    assert await reason("garbage") == "invalid_credentials"
    assert await reason(key + " ") == "invalid_credentials"
    assert await store.revoke_api_key(row["id"]) is True
    assert await reason(key) == "revoked_key"
    assert await store.revoke_api_key("not-a-uuid") is False


async def test_api_key_expiry_and_disabled_user(store: IdentityStore) -> None:
    clock: ManualClock = store.clock  # type: ignore[assignment]
    user = await store.create_user("alice")
    soon = datetime.fromtimestamp(clock.time(), UTC) + timedelta(seconds=60)
    _, key = await store.create_api_key(user["id"], expires_at=soon)
    await store.check_api_key(key)
    clock.advance(61)
    with pytest.raises(CredentialError) as exc:
        await store.check_api_key(key)
    assert exc.value.reason == "expired_key"
    _, other = await store.create_api_key(user["id"])
    await store.set_active(user["id"], False)
    with pytest.raises(CredentialError) as exc:
        await store.check_api_key(other)
    assert exc.value.reason == "disabled_user"


async def test_key_for_unknown_user_refused(store: IdentityStore) -> None:
    with pytest.raises(ValidationError):
        await store.create_api_key("00000000-0000-0000-0000-000000000000")


async def test_unknown_user_costs_one_argon2_verification_like_a_known_one(store: IdentityStore) -> None:
    await store.create_user("alice", password="right")
    ran: list[str] = []
    original = store.hasher._verify

    def spy(stored_hash: str, password: str) -> bool:
        ran.append(stored_hash.split("$")[1])
        return original(stored_hash, password)

    store.hasher._verify = spy
    for user in ("alice", "nobody", "keyonly-missing"):
        with pytest.raises(CredentialError):
            await store.check_password(user, "wrong")
    assert ran == ["argon2id", "argon2id", "argon2id"]


async def test_hashing_runs_off_the_event_loop(store: IdentityStore) -> None:
    import threading

    threads: list[int] = []
    inner = store.hasher._hasher
    original_hash, original_verify = inner.hash, inner.verify

    class Spy:
        def hash(self, pw):
            threads.append(threading.get_ident())
            return original_hash(pw)

        def verify(self, h, pw):
            threads.append(threading.get_ident())
            return original_verify(h, pw)

        def check_needs_rehash(self, h):
            return False

    store.hasher._hasher = Spy()
    await store.create_user("alice", password="pw")
    await store.check_password("alice", "pw")
    assert len(threads) == 2 and threading.get_ident() not in threads


async def test_old_parameters_are_rehashed_on_login(store: IdentityStore) -> None:
    from tframex_asgi.auth.passwords import PasswordHasher

    old = PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1)
    row = await store.create_user("alice")
    await store.storage.update("users", row["id"], {"password_hash": await old.hash("pw")})
    await store.check_password("alice", "pw")
    await store.drain()
    stored = (await store.storage.read("users", {"id": row["id"]}))[0]["password_hash"]
    assert "t=1" in stored and not store.hasher.needs_rehash(stored)
    await store.check_password("alice", "pw")
