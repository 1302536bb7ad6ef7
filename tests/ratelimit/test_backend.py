"""Both backends satisfy the one protocol the middleware and the brute-force guard use."""

from __future__ import annotations

from tests.ratelimit.helpers import config, redis_backend
from tframex_asgi.ratelimit import Backend, open_backend
from tframex_asgi.ratelimit.backend import MemoryBackend, RedisBackend, SyncBackend


async def test_memory_and_redis_are_sibling_backends(redis_url: str, redis_prefix: str) -> None:
    memory = open_backend(config())
    redis = redis_backend(storage=redis_url, key_prefix=redis_prefix)
    try:
        assert isinstance(memory, MemoryBackend) and isinstance(memory, Backend) and isinstance(memory, SyncBackend)
        assert isinstance(redis, Backend) and not isinstance(redis, SyncBackend)
        assert not issubclass(MemoryBackend, RedisBackend) and not issubclass(RedisBackend, MemoryBackend)
        assert memory.process_local and not redis.process_local
        assert not memory.unavailable and not redis.unavailable
        assert await memory.ping() and await redis.ping()
    finally:
        await memory.close()
        await redis.close()
