import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from services.common.clock import FrozenClock
from services.session.sessions import Sessions
from services.session.store import SessionStore

REDIS_URL = "redis://127.0.0.1:6379/0"
TWELVE_HOURS = 43200


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def key_prefix(redis: Redis) -> AsyncIterator[str]:
    """A prefix of this test's own, so tests share Redis without seeing each other's keys."""
    # In a hash tag already, as the store would make it, so the keys tests name are the stored ones.
    prefix = f"{{test-{secrets.token_hex(8)}:}}"
    yield prefix
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def store(redis: Redis, key_prefix: str) -> SessionStore:
    return SessionStore(redis, key_prefix)


@pytest.fixture
def sessions(store: SessionStore, clock: FrozenClock) -> Sessions:
    return Sessions(store, clock, sso_lifetime_seconds=TWELVE_HOURS, portal_lifetime_seconds=TWELVE_HOURS)


async def all_keys(redis: Redis, prefix: str) -> list[str]:
    return [key async for key in redis.scan_iter(match=f"{prefix}*")]


async def everything_stored(redis: Redis, prefix: str) -> str:
    """Every key name and value under the prefix, as one text to search."""
    parts: list[str] = []
    for key in await all_keys(redis, prefix):
        parts.append(key)
        kind = await redis.type(key)
        if kind == "hash":
            for field, value in (await redis.hgetall(key)).items():
                parts += [str(field), str(value)]
        elif kind == "set":
            parts += [str(member) for member in await redis.smembers(key)]
        elif kind == "string":
            parts.append(str(await redis.get(key)))
    return "\n".join(parts)
