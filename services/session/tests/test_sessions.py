"""The session rules against the real Redis on 127.0.0.1:6379, under a prefix of each test's own."""

import hashlib
from typing import Any

import pytest
from redis.asyncio import Redis

from services.common.clock import FrozenClock
from services.session.sessions import Sessions
from services.session.store import PortalLookupRefusal, SessionStore, SsoRefusal, ref_of

from .conftest import TWELVE_HOURS, all_keys, everything_stored

HOUR = 3600


async def test_session_ids_are_kept_only_as_their_sha256(
    sessions: Sessions, store: SessionStore, redis: Redis, key_prefix: str
) -> None:
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    portal = await sessions.start_portal(sso.sid, "user-1")
    assert portal is not None

    stored = await everything_stored(redis, key_prefix)

    assert sso.session_id not in stored
    assert portal.session_id not in stored
    assert store.sso_key(sso.sid) in await all_keys(redis, key_prefix)
    assert store.portal_key(ref_of(portal.session_id)) in await all_keys(redis, key_prefix)


async def test_ids_are_256_bit_random_and_sid_differs(sessions: Sessions) -> None:
    first = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    second = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])

    assert len(first.session_id) >= 43
    assert first.session_id != second.session_id
    assert first.sid != first.session_id and first.sid != second.sid
    # The sid is 128 bits of the id's SHA-256: public, and no way back to the id.
    assert first.sid == ref_of(first.session_id) and len(first.sid) == 22


async def test_sso_session_lives_its_lifetime_and_lookups_do_not_extend_it(
    sessions: Sessions, store: SessionStore, redis: Redis, clock: FrozenClock
) -> None:
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    key = store.sso_key(sso.sid)

    assert abs(await redis.ttl(key) - TWELVE_HOURS) <= 2
    assert sso.expires_at == sso.auth_time + TWELVE_HOURS == int(clock.now()) + TWELVE_HOURS

    # Shorten the key by hand: a lookup that reset the TTL would show the full lifetime again.
    await redis.expire(key, 100)
    found = await sessions.find_sso(sso.session_id)
    assert found is not None and found.username == "alice" and found.amr == ["pwd", "otp"]
    assert await redis.ttl(key) <= 100


async def test_sso_session_ends_at_its_absolute_expiry_however_busy(
    sessions: Sessions, clock: FrozenClock
) -> None:
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    for _ in range(11):
        clock.advance(HOUR)
        assert await sessions.find_sso(sso.session_id) is not None

    clock.advance(HOUR)

    assert await sessions.find_sso(sso.session_id) is None


async def test_portal_session_never_outlives_its_sso_session(
    sessions: Sessions, store: SessionStore, redis: Redis, clock: FrozenClock
) -> None:
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    clock.advance(11 * HOUR)

    portal = await sessions.start_portal(sso.sid, "user-1")

    assert portal is not None
    assert portal.expires_at == sso.expires_at
    ttl = await redis.ttl(store.portal_key(ref_of(portal.session_id)))
    assert abs(ttl - HOUR) <= 2


async def test_portal_key_never_outlives_the_sso_key_itself(
    sessions: Sessions, store: SessionStore, redis: Redis
) -> None:
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    # Redis is the judge of when the SSO key goes, whatever the clock in hand says.
    await redis.expire(store.sso_key(sso.sid), 100)

    portal = await sessions.start_portal(sso.sid, "user-1")

    assert portal is not None
    assert 0 < await redis.ttl(store.portal_key(ref_of(portal.session_id))) <= 100
    assert 0 < await redis.ttl(store.sso_key(sso.sid)) <= 100


async def test_portal_session_keeps_its_own_shorter_lifetime(
    store: SessionStore, redis: Redis, clock: FrozenClock
) -> None:
    sessions = Sessions(store, clock, sso_lifetime_seconds=TWELVE_HOURS, portal_lifetime_seconds=HOUR)
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])

    portal = await sessions.start_portal(sso.sid, "user-1")

    assert portal is not None and portal.expires_at == int(clock.now()) + HOUR
    ttl = await redis.ttl(store.portal_key(ref_of(portal.session_id)))
    assert abs(ttl - HOUR) <= 2
    clock.advance(HOUR)
    assert await sessions.find_portal(portal.session_id) is None


async def test_portal_lookup_returns_what_was_stored(sessions: Sessions) -> None:
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    portal = await sessions.start_portal(sso.sid, "user-1")
    assert portal is not None

    found = await sessions.find_portal(portal.session_id)

    assert found is not None
    assert (found.user_id, found.username, found.sid, found.expires_at) == (
        "user-1",
        "alice",
        sso.sid,
        sso.expires_at,
    )


async def test_no_portal_session_without_a_live_sso_session_of_that_user(
    sessions: Sessions, clock: FrozenClock
) -> None:
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])

    assert await sessions.start_portal("no-such-sid", "user-1") is None
    assert await sessions.start_portal(sso.sid, "user-2") is None
    clock.advance(TWELVE_HOURS)
    assert await sessions.start_portal(sso.sid, "user-1") is None


async def test_ending_the_sso_session_ends_its_portal_sessions(
    sessions: Sessions, redis: Redis, key_prefix: str
) -> None:
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    portals = [await sessions.start_portal(sso.sid, "user-1") for _ in range(2)]

    assert await sessions.end_sso(sid=sso.sid) is True

    assert await sessions.find_sso(sso.session_id) is None
    for portal in portals:
        assert portal is not None
        assert await sessions.find_portal(portal.session_id) is None
    assert await all_keys(redis, key_prefix) == []
    assert await sessions.end_sso(sid=sso.sid) is False


async def test_ending_by_session_id_reports_whether_it_was_live(sessions: Sessions) -> None:
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])

    assert await sessions.end_sso(session_id=sso.session_id) is True
    assert await sessions.end_sso(session_id=sso.session_id) is False
    assert await sessions.find_sso(sso.session_id) is None


async def test_portal_lookup_fails_as_soon_as_the_sso_key_is_gone(
    sessions: Sessions, store: SessionStore, redis: Redis
) -> None:
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    portal = await sessions.start_portal(sso.sid, "user-1")
    assert portal is not None

    # As when Redis expires the SSO key: the portal key itself is still there.
    await redis.delete(store.sso_key(sso.sid))

    assert await redis.exists(store.portal_key(ref_of(portal.session_id)))
    assert await sessions.find_portal(portal.session_id) is None


async def test_a_portal_session_its_sso_session_no_longer_lists_is_gone(
    sessions: Sessions, store: SessionStore, redis: Redis
) -> None:
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    portal = await sessions.start_portal(sso.sid, "user-1")
    assert portal is not None and await sessions.find_portal(portal.session_id) is not None

    await redis.hdel(store.sso_key(sso.sid), f"p{ref_of(portal.session_id)}")

    assert await redis.exists(store.portal_key(ref_of(portal.session_id)))
    assert await sessions.find_portal(portal.session_id) is None


async def test_a_key_of_the_layout_before_issue_11_is_no_session(
    sessions: Sessions, store: SessionStore, redis: Redis, key_prefix: str
) -> None:
    """At an upgrade, Redis still holds sessions of the old layout: they are absent, never an error."""
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    old_id = "o" * 43
    old_ref = hashlib.sha256(old_id.encode()).hexdigest()
    fields: dict[Any, Any] = {
        "user_id": "user-1", "username": "alice", "sid": "old-sid", "amr": '["pwd", "otp"]'
    }  # fmt: skip
    await redis.hset(f"{key_prefix}sso:{old_ref}", mapping={**fields, "auth_time": 1, "expires_at": 2**40})
    await redis.set(f"{key_prefix}sid:old-sid", old_ref)
    await redis.sadd(f"{key_prefix}user:user-1", old_ref)
    await redis.zadd(f"{key_prefix}live-sso", {old_ref: 1})
    # The old names under the new ones too: an old key where a new one would be is no session.
    await redis.hset(store.sso_key(ref_of(old_id)), mapping=fields)

    assert await sessions.find_sso(old_id) is None
    assert await sessions.end_sso(sid="old-sid") is False
    assert await sessions.start_portal("old-sid", "user-1") is None
    assert [record.sid for record, _ in await store.user_sso_sessions("user-1")] == [sso.sid]
    assert await sessions.revoke_user("user-1") == 1
    assert await store.count_live_sso(100) == 0
    assert not await redis.exists(f"{key_prefix}live-sso")


async def test_ending_a_portal_session_leaves_the_sso_session(sessions: Sessions) -> None:
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    portal = await sessions.start_portal(sso.sid, "user-1")
    assert portal is not None

    assert await sessions.end_portal(portal.session_id) is True

    assert await sessions.find_portal(portal.session_id) is None
    assert await sessions.find_sso(sso.session_id) is not None
    assert await sessions.end_portal(portal.session_id) is False


async def test_revoke_user_ends_every_session_of_that_user_only(
    sessions: Sessions, store: SessionStore, redis: Redis, key_prefix: str
) -> None:
    alice_sso = [await sessions.start_sso("user-1", "alice", ["pwd", "otp"]) for _ in range(2)]
    alice_portals = [await sessions.start_portal(sso.sid, "user-1") for sso in alice_sso]
    bob_sso = await sessions.start_sso("user-2", "bob", ["pwd", "otp"])
    bob_portal = await sessions.start_portal(bob_sso.sid, "user-2")
    assert bob_portal is not None

    listed = await store.user_sso_sessions("user-1")
    assert sorted((record.sid, portals) for record, portals in listed) == sorted(
        (sso.sid, 1) for sso in alice_sso
    )
    assert await sessions.revoke_user("user-1") == 2

    for sso in alice_sso:
        assert await sessions.find_sso(sso.session_id) is None
    for portal in alice_portals:
        assert portal is not None
        assert await sessions.find_portal(portal.session_id) is None
    assert await sessions.find_sso(bob_sso.session_id) is not None
    assert await sessions.find_portal(bob_portal.session_id) is not None
    assert not [key for key in await all_keys(redis, key_prefix) if "user-1" in key]
    assert await sessions.revoke_user("user-1") == 0
    assert await store.user_sso_sessions("user-1") == []


async def test_idle_sso_session_ends_and_use_keeps_it_alive(
    store: SessionStore, redis: Redis, key_prefix: str, clock: FrozenClock
) -> None:
    sessions = Sessions(
        store,
        clock,
        sso_lifetime_seconds=TWELVE_HOURS,
        portal_lifetime_seconds=TWELVE_HOURS,
        idle_timeout_seconds=600,
    )
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    portal = await sessions.start_portal(sso.sid, "user-1")
    assert portal is not None
    key = store.sso_key(sso.sid)
    await redis.expire(key, 5000)

    clock.advance(500)
    assert await sessions.find_sso(sso.session_id) is not None
    clock.advance(500)
    # Using the portal counts as using the SSO session it came from.
    assert await sessions.find_portal(portal.session_id) is not None
    assert await redis.ttl(key) <= 5000

    clock.advance(600)

    assert await sessions.find_portal(portal.session_id) is None
    assert await sessions.find_sso(sso.session_id) is None
    assert await all_keys(redis, key_prefix) == []


@pytest.mark.parametrize("lifetime", [60, TWELVE_HOURS])
async def test_sso_lifetime_follows_the_setting(
    store: SessionStore, redis: Redis, key_prefix: str, clock: FrozenClock, lifetime: int
) -> None:
    sessions = Sessions(store, clock, sso_lifetime_seconds=lifetime, portal_lifetime_seconds=TWELVE_HOURS)
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])

    assert abs(await redis.ttl(store.sso_key(sso.sid)) - lifetime) <= 2
    assert abs(await redis.ttl(store.user_key("user-1")) - lifetime) <= 2


async def test_only_the_newest_portal_sessions_of_an_sso_session_stay(
    store: SessionStore, clock: FrozenClock, redis: Redis, key_prefix: str
) -> None:
    sessions = Sessions(
        store,
        clock,
        sso_lifetime_seconds=TWELVE_HOURS,
        portal_lifetime_seconds=TWELVE_HOURS,
        max_portal_sessions_per_sso=3,
    )
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    other = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    elsewhere = await sessions.start_portal(other.sid, "user-1")
    made = []
    for _ in range(10):
        portal = await sessions.start_portal(sso.sid, "user-1")
        assert portal is not None
        made.append(portal.session_id)
        clock.advance(0.001)
    live = [session_id for session_id in made if await sessions.find_portal(session_id) is not None]
    assert live == made[-3:], "the oldest go"
    assert len(await all_keys(redis, store.portal_key(""))) == 4
    parent = await store.get_sso_by_sid(sso.sid)
    assert parent is not None and len(parent.children) == 3
    assert elsewhere is not None and await sessions.find_portal(elsewhere.session_id) is not None


async def test_a_user_ends_only_their_own_session_by_its_sid(sessions: Sessions) -> None:
    mine = await sessions.start_sso(
        "user-1", "alice", ["pwd", "otp"], device="Safari on iPhone", address="10.0.0.9"
    )
    theirs = await sessions.start_sso("user-2", "bob", ["pwd", "otp"])

    assert not await sessions.end_session_of("user-1", theirs.sid)
    assert await sessions.find_sso(theirs.session_id) is not None
    (listed,) = await sessions.live_sessions_of("user-1")
    assert (listed.sid, listed.device, listed.address) == (mine.sid, "Safari on iPhone", "10.0.0.9")

    assert await sessions.end_session_of("user-1", mine.sid)
    assert await sessions.find_sso(mine.session_id) is None
    assert await sessions.live_sessions_of("user-1") == []


async def test_revoking_a_user_keeps_the_session_asked_to_be_kept(sessions: Sessions) -> None:
    here = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    elsewhere = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])

    assert await sessions.revoke_user("user-1", keep_sid=here.sid) == 1

    assert await sessions.find_sso(here.session_id) is not None
    assert await sessions.find_sso(elsewhere.session_id) is None


def idle_sessions(store: SessionStore, clock: FrozenClock, idle_timeout: int = 600) -> Sessions:
    return Sessions(
        store,
        clock,
        sso_lifetime_seconds=TWELVE_HOURS,
        portal_lifetime_seconds=TWELVE_HOURS,
        idle_timeout_seconds=idle_timeout,
    )


@pytest.mark.parametrize("idle_timeout", [0, 600])
async def test_a_portal_session_for_another_user_is_refused_and_nothing_is_written(
    store: SessionStore, redis: Redis, key_prefix: str, clock: FrozenClock, idle_timeout: int
) -> None:
    sessions = idle_sessions(store, clock, idle_timeout)
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    clock.advance(300)
    before = await everything_stored(redis, key_prefix)

    assert await sessions.start_portal(sso.sid, "user-2") is None

    # Not even the idle timeout's touch: naming the wrong user is no use of the session.
    assert await everything_stored(redis, key_prefix) == before
    assert await all_keys(redis, store.portal_key("")) == []


async def test_an_expired_parent_is_refused_and_left_to_redis(
    store: SessionStore, redis: Redis, key_prefix: str, clock: FrozenClock
) -> None:
    sessions = idle_sessions(store, clock)
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    # Past its expires_at, and idle too: expiry is checked first, so it is not ended but left to
    # its TTL, as a lookup leaves it. Its key is still in Redis, whose clock is the real one.
    clock.advance(TWELVE_HOURS)
    assert await redis.exists(store.sso_key(sso.sid))
    before = await everything_stored(redis, key_prefix)

    assert await sessions.start_portal(sso.sid, "user-1") is None

    assert await everything_stored(redis, key_prefix) == before
    assert await all_keys(redis, store.portal_key("")) == []


async def test_an_idle_parent_is_refused_and_ended(
    store: SessionStore, redis: Redis, key_prefix: str, clock: FrozenClock
) -> None:
    sessions = idle_sessions(store, clock)
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    clock.advance(600)

    assert await sessions.start_portal(sso.sid, "user-1") is None

    # Ended as a lookup would end it: the session, its place in the user's index, its live count.
    assert await all_keys(redis, key_prefix) == []
    assert await sessions.find_sso(sso.session_id) is None


async def test_a_new_portal_session_counts_as_a_use_of_its_parent(
    store: SessionStore, redis: Redis, clock: FrozenClock
) -> None:
    sessions = idle_sessions(store, clock)
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    clock.advance(500)

    portal = await sessions.start_portal(sso.sid, "user-1")

    assert portal is not None
    assert await redis.hget(store.sso_key(sso.sid), "l") == str(int(clock.now()))
    # 1000 s after sign-in, 500 after the portal session: still live only thanks to that touch.
    clock.advance(500)
    assert await sessions.find_sso(sso.session_id) is not None


async def test_without_an_idle_timeout_a_new_portal_session_touches_nothing(
    sessions: Sessions, store: SessionStore, redis: Redis, clock: FrozenClock
) -> None:
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    clock.advance(500)

    assert await sessions.start_portal(sso.sid, "user-1") is not None

    assert await redis.hget(store.sso_key(sso.sid), "l") == str(sso.auth_time)


# An SSO record as _sso_record does not read it: a field dropped, or a number int() does not read
# ("1.5" too: the scripts' one sso_times reads numbers as int() does, not as Lua's tonumber).
BROKEN_RECORDS = [
    {"drop": "n"},
    {"drop": "u"},
    {"drop": "a"},
    {"drop": "t"},
    {"drop": "l"},
    {"set": ("e", "soon")},
    {"set": ("t", "x")},
    {"set": ("l", "1.5")},
]


async def break_record(redis: Redis, key: str, broken: dict[str, Any]) -> None:
    if "drop" in broken:
        await redis.hdel(key, broken["drop"])
    else:
        await redis.hset(key, *broken["set"])


@pytest.mark.parametrize("broken", BROKEN_RECORDS)
@pytest.mark.parametrize("idle_timeout", [0, 600])
async def test_a_parent_record_that_is_not_whole_is_no_parent(
    store: SessionStore,
    redis: Redis,
    key_prefix: str,
    clock: FrozenClock,
    broken: dict[str, Any],
    idle_timeout: int,
) -> None:
    sessions = idle_sessions(store, clock, idle_timeout)
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    await break_record(redis, store.sso_key(sso.sid), broken)
    # The lookup reads it as no session at all; so does the portal session's script.
    assert await store.get_sso_by_sid(sso.sid) is None
    before = await everything_stored(redis, key_prefix)

    assert await sessions.start_portal(sso.sid, "user-1") is None

    assert await everything_stored(redis, key_prefix) == before


async def test_keeping_the_newest_portal_sessions_with_an_idle_timeout(
    store: SessionStore, redis: Redis, clock: FrozenClock
) -> None:
    sessions = Sessions(
        store,
        clock,
        sso_lifetime_seconds=TWELVE_HOURS,
        portal_lifetime_seconds=HOUR,
        idle_timeout_seconds=600,
        max_portal_sessions_per_sso=2,
    )
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    made = []
    for _ in range(4):
        clock.advance(300)  # each one keeps the parent from idling out
        portal = await sessions.start_portal(sso.sid, "user-1")
        assert portal is not None and portal.expires_at == int(clock.now()) + HOUR
        made.append(portal)

    assert [await sessions.find_portal(portal.session_id) is not None for portal in made] == [
        False,
        False,
        True,
        True,
    ]
    assert len(await all_keys(redis, store.portal_key(""))) == 2
    for portal in made[2:]:
        stored = await redis.get(store.portal_key(ref_of(portal.session_id)))
        assert stored == f"{sso.sid} {portal.expires_at}"


async def portal_under(sessions: Sessions, user_id: str = "user-1") -> tuple[str, str]:
    """A new SSO session and a portal session made from it: their (sid, portal session id)."""
    sso = await sessions.start_sso(user_id, "alice", ["pwd", "otp"])
    portal = await sessions.start_portal(sso.sid, user_id)
    assert portal is not None
    return sso.sid, portal.session_id


async def break_link(redis: Redis, store: SessionStore, sid: str, portal_id: str) -> None:
    await redis.set(store.portal_key(ref_of(portal_id)), sid)


async def expire_parent(redis: Redis, store: SessionStore, sid: str, now: int) -> None:
    await redis.hset(store.sso_key(sid), "e", now)


@pytest.mark.parametrize(
    ("spoil", "refusal"),
    [
        (lambda redis, store, sid, portal_id, now: redis.delete(store.portal_key(ref_of(portal_id))), "GONE"),
        (lambda redis, store, sid, portal_id, now: break_link(redis, store, sid, portal_id), "GONE"),
        (lambda redis, store, sid, portal_id, now: redis.delete(store.sso_key(sid)), "PARENT_GONE"),
        (lambda redis, store, sid, portal_id, now: redis.hdel(store.sso_key(sid), "n"), "PARENT_GONE"),
        (
            lambda redis, store, sid, portal_id, now: redis.hset(store.sso_key(sid), "l", "soon"),
            "PARENT_GONE",
        ),
        (
            lambda redis, store, sid, portal_id, now: redis.hdel(store.sso_key(sid), f"p{ref_of(portal_id)}"),
            "NOT_LISTED",
        ),
        (lambda redis, store, sid, portal_id, now: expire_parent(redis, store, sid, now), "PARENT_EXPIRED"),
    ],
)
async def test_each_refused_portal_lookup_says_why_and_writes_nothing(
    store: SessionStore, redis: Redis, key_prefix: str, clock: FrozenClock, spoil: Any, refusal: str
) -> None:
    sessions = idle_sessions(store, clock)
    sid, portal_id = await portal_under(sessions)
    clock.advance(300)
    await spoil(redis, store, sid, portal_id, int(clock.now()))
    before = await everything_stored(redis, key_prefix)

    found = await store.find_live_portal(portal_id, now=int(clock.now()), idle_timeout_seconds=600)

    assert found.refusal is PortalLookupRefusal[refusal]
    assert await sessions.find_portal(portal_id) is None
    # Not even the idle timeout's touch of the parent.
    assert await everything_stored(redis, key_prefix) == before


async def test_an_expired_portal_session_is_refused_before_its_idle_parent_is_ended(
    store: SessionStore, redis: Redis, key_prefix: str, clock: FrozenClock
) -> None:
    sessions = Sessions(
        store,
        clock,
        sso_lifetime_seconds=TWELVE_HOURS,
        portal_lifetime_seconds=HOUR,
        idle_timeout_seconds=600,
    )
    sid, portal_id = await portal_under(sessions)
    clock.advance(HOUR)
    before = await everything_stored(redis, key_prefix)

    found = await store.find_live_portal(portal_id, now=int(clock.now()), idle_timeout_seconds=600)

    assert found.refusal is PortalLookupRefusal.EXPIRED and found.parent_sid == sid
    assert await sessions.find_portal(portal_id) is None
    assert await everything_stored(redis, key_prefix) == before


async def test_a_portal_session_its_idle_parent_no_longer_lists_leaves_the_parent(
    store: SessionStore, redis: Redis, key_prefix: str, clock: FrozenClock
) -> None:
    sessions = idle_sessions(store, clock)
    sid, portal_id = await portal_under(sessions)
    await redis.hdel(store.sso_key(sid), f"p{ref_of(portal_id)}")
    clock.advance(600)
    before = await everything_stored(redis, key_prefix)

    assert await sessions.find_portal(portal_id) is None

    # Checked before the parent's idle timeout, as before: the parent is left for its own lookup.
    assert await everything_stored(redis, key_prefix) == before


async def test_a_portal_lookup_under_an_idle_parent_ends_the_parent(
    store: SessionStore, redis: Redis, key_prefix: str, clock: FrozenClock
) -> None:
    sessions = idle_sessions(store, clock)
    sid, portal_id = await portal_under(sessions)
    clock.advance(600)

    found = await store.find_live_portal(portal_id, now=int(clock.now()), idle_timeout_seconds=600)
    assert found.refusal is PortalLookupRefusal.PARENT_IDLE and found.parent_sid == sid
    assert await sessions.find_portal(portal_id) is None

    # Ended as an SSO lookup ends it: the session, its portal sessions, its index, its count.
    assert await all_keys(redis, key_prefix) == []


@pytest.mark.parametrize("idle_timeout", [0, 600])
async def test_a_portal_lookup_counts_as_a_use_of_its_parent_only_with_an_idle_timeout(
    store: SessionStore, redis: Redis, key_prefix: str, clock: FrozenClock, idle_timeout: int
) -> None:
    sessions = idle_sessions(store, clock, idle_timeout)
    sid, portal_id = await portal_under(sessions)
    signed_in = int(clock.now())
    clock.advance(500)
    before = await everything_stored(redis, key_prefix)

    found = await sessions.find_portal(portal_id)

    assert found is not None
    assert (found.parent_ref, found.sid, found.user_id, found.username) == (sid, sid, "user-1", "alice")
    assert found.expires_at == signed_in + TWELVE_HOURS
    if idle_timeout:
        assert await redis.hget(store.sso_key(sid), "l") == str(int(clock.now()))
        # 1000 s after sign-in, 500 after the portal lookup: still live only thanks to that touch.
        clock.advance(500)
        assert await sessions.find_portal(portal_id) is not None
    else:
        assert await everything_stored(redis, key_prefix) == before


@pytest.mark.parametrize("broken", BROKEN_RECORDS)
@pytest.mark.parametrize("idle_timeout", [0, 600])
async def test_an_sso_record_that_is_not_whole_is_no_session_and_is_not_touched(
    store: SessionStore,
    redis: Redis,
    key_prefix: str,
    clock: FrozenClock,
    broken: dict[str, Any],
    idle_timeout: int,
) -> None:
    sessions = idle_sessions(store, clock, idle_timeout)
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    await break_record(redis, store.sso_key(sso.sid), broken)
    clock.advance(300)
    before = await everything_stored(redis, key_prefix)

    found = await store.find_live_sso(sso.session_id, now=int(clock.now()), idle_timeout_seconds=idle_timeout)

    assert found is SsoRefusal.GONE
    assert await sessions.find_sso(sso.session_id) is None
    assert await everything_stored(redis, key_prefix) == before


@pytest.mark.parametrize("idle_timeout", [0, 600])
async def test_an_expired_sso_session_is_refused_and_left_to_redis(
    store: SessionStore, redis: Redis, key_prefix: str, clock: FrozenClock, idle_timeout: int
) -> None:
    sessions = idle_sessions(store, clock, idle_timeout)
    sso = await sessions.start_sso("user-1", "alice", ["pwd", "otp"])
    # Past its expires_at, and idle too: expiry is checked first, so it is not ended.
    clock.advance(TWELVE_HOURS)
    before = await everything_stored(redis, key_prefix)

    found = await store.find_live_sso(sso.session_id, now=int(clock.now()), idle_timeout_seconds=idle_timeout)

    assert found is SsoRefusal.EXPIRED
    assert await sessions.find_sso(sso.session_id) is None
    assert await everything_stored(redis, key_prefix) == before


async def test_an_idle_sso_session_is_refused_and_ended(
    store: SessionStore, redis: Redis, key_prefix: str, clock: FrozenClock
) -> None:
    sessions = idle_sessions(store, clock)
    sid, portal_id = await portal_under(sessions)
    session_id = (await sessions.start_sso("user-1", "alice", ["pwd", "otp"])).session_id
    clock.advance(600)

    found = await store.find_live_sso(session_id, now=int(clock.now()), idle_timeout_seconds=600)
    assert found is SsoRefusal.IDLE
    assert await sessions.find_sso(session_id) is None

    # Only that one ended (the other SSO session and its portal session are still stored).
    assert not await redis.exists(store.sso_key(ref_of(session_id)))
    assert await redis.exists(store.sso_key(sid), store.portal_key(ref_of(portal_id))) == 2


@pytest.mark.parametrize("idle_timeout", [0, 600])
async def test_an_sso_lookup_returns_the_whole_record_and_touches_it_only_with_an_idle_timeout(
    store: SessionStore, redis: Redis, key_prefix: str, clock: FrozenClock, idle_timeout: int
) -> None:
    sessions = idle_sessions(store, clock, idle_timeout)
    sso = await sessions.start_sso(
        "user-1", "alice", ["pwd", "otp"], device="Firefox on Linux", address="192.0.2.1"
    )
    portal = await sessions.start_portal(sso.sid, "user-1")
    assert portal is not None
    clock.advance(500)
    before = await everything_stored(redis, key_prefix)

    found = await sessions.find_sso(sso.session_id)

    # Every field as the hash was read, before the touch.
    assert found is not None
    assert (found.sid, found.user_id, found.username, found.amr) == (
        sso.sid,
        "user-1",
        "alice",
        ["pwd", "otp"],
    )
    assert (found.auth_time, found.expires_at, found.last_used) == (
        sso.auth_time,
        sso.expires_at,
        sso.auth_time,
    )
    assert found.children == (ref_of(portal.session_id),)
    assert (found.device, found.address) == ("Firefox on Linux", "192.0.2.1")
    if idle_timeout:
        assert await redis.hget(store.sso_key(sso.sid), "l") == str(int(clock.now()))
    else:
        assert await everything_stored(redis, key_prefix) == before
