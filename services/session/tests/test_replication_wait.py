"""WAIT after each session write: on by setting, a write stands when no replica answers in time."""

import logging

import pytest
from redis.asyncio import Redis

from services.session.store import SessionStore

from .conftest import all_keys

SSO = {
    "user_id": "u1",
    "username": "alice",
    "amr": ["pwd", "otp"],
    "auth_time": 1,
    "expires_at": 100,
}


async def test_without_replicas_to_wait_for_no_mark_is_written(redis: Redis, key_prefix: str) -> None:
    store = SessionStore(redis, key_prefix)
    await store.create_sso("session-1", ttl_seconds=60, **SSO)  # type: ignore[arg-type]
    assert not [key for key in await all_keys(redis, key_prefix) if key.endswith("replication-mark")]


async def test_a_write_no_replica_acknowledges_stands_with_a_warning(
    redis: Redis, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The Redis of the unit tests has no replica: WAIT 1 answers 0 after its timeout.
    store = SessionStore(redis, key_prefix, wait_replicas=1, wait_timeout_ms=20)
    with caplog.at_level(logging.WARNING, logger="services.session.store"):
        await store.create_sso("session-1", ttl_seconds=60, **SSO)  # type: ignore[arg-type]
        assert await store.end_sso("session-1") is True
    assert await store.get_sso("session-1") is None
    assert [record.getMessage() for record in caplog.records] == [
        "a session write reached 0 of 1 replicas in 20 ms"
    ] * 2
