"""Redis round trips of a new portal session: one script, plus the replication WAIT when asked."""

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Connection, ConnectionPool, Redis

from services.common.clock import FrozenClock
from services.session.sessions import Sessions
from services.session.store import SessionStore

from .conftest import TWELVE_HOURS


class CountingConnection(Connection):
    """Counts what it sends: one send is one round trip (a pipeline's commands go in one)."""

    sent = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        await super().send_packed_command(command, check_health)


@pytest.fixture
async def counted_redis() -> AsyncIterator[Redis]:
    pool = ConnectionPool(
        host="127.0.0.1", port=6379, decode_responses=True, connection_class=CountingConnection
    )
    client = Redis(connection_pool=pool)
    yield client
    await client.aclose()


async def round_trips_of(call: Any) -> tuple[Any, int]:
    CountingConnection.sent = 0
    result = await call
    return result, CountingConnection.sent


@pytest.mark.parametrize("idle_timeout", [0, 600])
@pytest.mark.parametrize("wait_replicas", [0, 1])
async def test_a_portal_session_takes_one_round_trip_and_the_wait(
    counted_redis: Redis,
    key_prefix: str,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    idle_timeout: int,
    wait_replicas: int,
) -> None:
    # The Redis of the unit tests has no replica: a WAIT 1 answers 0 after its 5 ms.
    store = SessionStore(counted_redis, key_prefix, wait_replicas=wait_replicas, wait_timeout_ms=5)
    sessions = Sessions(
        store,
        clock,
        sso_lifetime_seconds=TWELVE_HOURS,
        portal_lifetime_seconds=TWELVE_HOURS,
        idle_timeout_seconds=idle_timeout,
        max_portal_sessions_per_sso=2,
    )
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    # Connected, the script loaded, and the parent already at its limit of portal sessions.
    for _ in range(3):
        assert await sessions.start_portal(sso.sid, "user-1") is not None
    caplog.clear()

    with caplog.at_level(logging.WARNING, logger="services.session.store"):
        started, trips = await round_trips_of(sessions.start_portal(sso.sid, "user-1"))
        refused, refused_trips = await round_trips_of(sessions.start_portal(sso.sid, "user-2"))

    assert started is not None and trips == 1 + wait_replicas
    # A refusal writes nothing, so it waits for no replica.
    assert refused is None and refused_trips == 1
    assert [record.getMessage() for record in caplog.records] == [
        "a session write reached 0 of 1 replicas in 5 ms"
    ] * wait_replicas


@pytest.mark.parametrize("idle_timeout", [0, 600])
@pytest.mark.parametrize("wait_replicas", [0, 1])
async def test_a_lookup_takes_one_round_trip_and_waits_for_no_replica(
    counted_redis: Redis,
    key_prefix: str,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    idle_timeout: int,
    wait_replicas: int,
) -> None:
    store = SessionStore(counted_redis, key_prefix, wait_replicas=wait_replicas, wait_timeout_ms=5)
    sessions = Sessions(
        store,
        clock,
        sso_lifetime_seconds=TWELVE_HOURS,
        portal_lifetime_seconds=TWELVE_HOURS,
        idle_timeout_seconds=idle_timeout,
    )
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    portal = await sessions.start_portal(sso.sid, "user-1")
    assert portal is not None
    # Connected, and the scripts loaded.
    assert await sessions.find_portal(portal.session_id) is not None
    assert await sessions.find_sso(sso.session_id) is not None
    await sessions.end_portal(portal.session_id)
    portal = await sessions.start_portal(sso.sid, "user-1")
    assert portal is not None
    caplog.clear()

    with caplog.at_level(logging.WARNING, logger="services.session.store"):
        found_portal, portal_trips = await round_trips_of(sessions.find_portal(portal.session_id))
        found_sso, sso_trips = await round_trips_of(sessions.find_sso(sso.session_id))
        missing, missing_trips = await round_trips_of(sessions.find_portal("no-such-session"))

    # The checks, and the idle timeout's touch, in the one script: with or without an idle
    # timeout, and a lookup, a read, waits for no replica.
    assert found_portal is not None and portal_trips == 1
    assert found_sso is not None and sso_trips == 1
    assert missing is None and missing_trips == 1
    assert caplog.records == []
