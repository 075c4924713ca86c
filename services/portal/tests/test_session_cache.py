"""The portal page's 1-second memory of session checks, on a fake session service and fake clocks."""

import asyncio
import hashlib
from dataclasses import dataclass, field

from services.common.clock import FrozenClock
from services.portal.oidc_login import SignedIn
from services.portal.store import NewPortalSession, PortalSession, RecentlyCheckedPortalSessions


@dataclass
class Ticks:
    """A monotonic clock moved by hand."""

    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class SessionService:
    """What the session service knows; each lookup can take `lookup_seconds` of the fake clock."""

    ticks: Ticks
    live: dict[str, PortalSession] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    lookup_seconds: float = 0.0
    # Set while a lookup waits, to let a test act in the middle of it.
    pause: asyncio.Event | None = None

    async def create(self, signed_in: SignedIn) -> NewPortalSession | None:
        session_id = f"new-{len(self.live)}"
        self.live[session_id] = PortalSession(signed_in.user_id, signed_in.username, signed_in.sid, 2**40)
        if self.pause is not None:
            await self.pause.wait()
        return NewPortalSession(session_id, 2**40)

    async def find(self, session_id: str) -> PortalSession | None:
        self.lookups.append(session_id)
        found = self.live.get(session_id)
        self.ticks.now += self.lookup_seconds
        if self.pause is not None:
            await self.pause.wait()
        return found

    async def find_recent(self, session_id: str) -> PortalSession | None:
        return await self.find(session_id)

    async def end(self, session_id: str) -> bool:
        return self.live.pop(session_id, None) is not None

    async def end_every_session_of(self, user_id: str) -> int:
        mine = [sid for sid, session in self.live.items() if session.user_id == user_id]
        for session_id in mine:
            del self.live[session_id]
        return len(mine)

    def forget(self, user_id: str) -> None:
        """Nothing to forget: the service itself."""


def session(user_id: str = "user-1", expires_at: int = 2_000_000_000) -> PortalSession:
    return PortalSession(user_id, "alice", "sid-1", expires_at)


def made(
    max_age: float = 1.0, max_entries: int = 100
) -> tuple[RecentlyCheckedPortalSessions, SessionService, Ticks, FrozenClock]:
    ticks, clock = Ticks(), FrozenClock()
    service = SessionService(ticks)
    cache = RecentlyCheckedPortalSessions(
        service, clock, max_age=max_age, max_entries=max_entries, ticks=ticks
    )
    return cache, service, ticks, clock


async def test_a_live_session_is_answered_from_its_check_for_less_than_a_second() -> None:
    cache, service, ticks, _ = made()
    service.live["cookie-1"] = session()

    assert await cache.find_recent("cookie-1") == session()
    ticks.now += 0.999
    assert await cache.find_recent("cookie-1") == session()
    assert service.lookups == ["cookie-1"]

    ticks.now += 0.001
    assert await cache.find_recent("cookie-1") == session()
    assert service.lookups == ["cookie-1", "cookie-1"], "checked again once a second has passed"


async def test_a_session_ended_elsewhere_is_refused_at_most_a_second_after_its_last_check() -> None:
    cache, service, ticks, _ = made()
    service.live["cookie-1"] = session()
    assert await cache.find_recent("cookie-1") is not None

    ticks.now += 0.2
    # Sign out everywhere in another process, an admin revoke: nothing this process sees.
    del service.live["cookie-1"]
    ticks.now += 0.799
    assert await cache.find_recent("cookie-1") is not None, "within the bound, the check may stand"
    ticks.now += 0.001

    assert await cache.find_recent("cookie-1") is None
    assert len(cache) == 0


async def test_the_second_counts_from_when_the_lookup_was_sent() -> None:
    cache, service, ticks, _ = made()
    service.live["cookie-1"] = session()
    service.lookup_seconds = 0.4  # a slow answer

    assert await cache.find_recent("cookie-1") is not None
    del service.live["cookie-1"]
    ticks.now += 0.6  # 1.0 s after the lookup was sent, 0.6 s after its answer

    assert await cache.find_recent("cookie-1") is None


async def test_a_refusal_is_never_remembered() -> None:
    cache, service, _, _ = made()

    assert await cache.find_recent("cookie-1") is None
    service.live["cookie-1"] = session()

    assert await cache.find_recent("cookie-1") is not None, "the very next request asks again"
    assert service.lookups == ["cookie-1", "cookie-1"]


async def test_an_expired_session_is_never_answered_from_memory() -> None:
    cache, service, _, clock = made()
    service.live["cookie-1"] = session(expires_at=int(clock.now()) + 1)
    assert await cache.find_recent("cookie-1") is not None

    clock.advance(1)
    del service.live["cookie-1"]  # as the session service would refuse it now

    assert await cache.find_recent("cookie-1") is None, "past its end, the memory never answers"
    assert service.lookups == ["cookie-1", "cookie-1"]


async def test_what_this_process_ends_is_forgotten_at_once() -> None:
    cache, service, _, _ = made()
    service.live = {"laptop": session(), "phone": session(), "bob": session("user-2")}
    for cookie in service.live.copy():
        assert await cache.find_recent(cookie) is not None

    assert await cache.end("laptop") is True
    assert await cache.find_recent("laptop") is None
    assert await cache.end_every_session_of("user-1") == 1
    assert await cache.find_recent("phone") is None, "Sign out everywhere, another browser"
    assert await cache.find_recent("bob") is not None
    assert service.lookups.count("bob") == 1, "another customer's check stands"

    # A new sign-in may end the user's oldest portal sessions in the session service.
    await cache.create(SignedIn("user-2", "bob", "sid-2"))
    del service.live["bob"]
    assert await cache.find_recent("bob") is None

    # The support desk ended someone's sessions through the admin API.
    service.live["carol"] = session("user-3")
    assert await cache.find_recent("carol") is not None
    del service.live["carol"]
    cache.forget("user-3")
    assert await cache.find_recent("carol") is None


async def test_a_lookup_under_way_when_something_is_forgotten_is_not_remembered() -> None:
    cache, service, _, _ = made()
    service.live["phone"] = session()
    service.pause = asyncio.Event()
    lookup = asyncio.create_task(cache.find_recent("phone"))
    await asyncio.sleep(0)  # the lookup has read the session and waits for its answer

    await cache.end_every_session_of("user-1")
    service.pause.set()
    assert await lookup is not None  # the answer it had, from before the sign-out
    service.pause = None

    assert await cache.find_recent("phone") is None, "not remembered: asked again"


async def test_the_memory_is_bounded_and_the_least_recently_used_go_first() -> None:
    cache, service, _, _ = made(max_entries=2)
    service.live = {"a": session(), "b": session(), "c": session()}
    for cookie in ("a", "b", "a", "c"):
        await cache.find_recent(cookie)

    assert len(cache) == 2
    service.lookups.clear()
    await cache.find_recent("a")
    await cache.find_recent("c")
    await cache.find_recent("b")
    assert service.lookups == ["b"], "b was the least recently used"


async def test_cookies_are_kept_only_as_their_sha256() -> None:
    cache, service, _, _ = made()
    cookie = "S" * 43
    service.live[cookie] = session()
    await cache.find_recent(cookie)

    assert list(cache._checked) == [hashlib.sha256(cookie.encode()).digest()]


async def test_plain_find_always_asks_and_zero_turns_the_memory_off() -> None:
    cache, service, _, _ = made()
    service.live["cookie-1"] = session()
    await cache.find("cookie-1")
    await cache.find("cookie-1")
    assert service.lookups == ["cookie-1"] * 2

    off, service, _, _ = made(max_age=0)
    service.live["cookie-1"] = session()
    await off.find_recent("cookie-1")
    await off.find_recent("cookie-1")
    assert service.lookups == ["cookie-1"] * 2 and len(off) == 0


async def test_a_session_just_made_is_remembered_from_when_its_start_was_sent() -> None:
    cache, service, ticks, _ = made()
    created = await cache.create(SignedIn("user-1", "alice", "sid-1"))
    assert created is not None
    assert await cache.find_recent(created.session_id) == service.live[created.session_id]
    assert service.lookups == [], "the page after the callback asks nothing"

    # Ended elsewhere right after: refused once a second has passed since the start was sent.
    del service.live[created.session_id]
    ticks.now += 0.999
    assert await cache.find_recent(created.session_id) is not None
    ticks.now += 0.001
    assert await cache.find_recent(created.session_id) is None
    assert service.lookups == [created.session_id]


async def test_a_session_made_while_something_is_forgotten_or_with_no_memory_is_asked_for() -> None:
    cache, service, _, _ = made()
    service.pause = asyncio.Event()
    creating = asyncio.create_task(cache.create(SignedIn("user-1", "alice", "sid-1")))
    await asyncio.sleep(0)
    await cache.end_every_session_of("user-1")
    service.pause.set()
    created = await creating
    service.pause = None
    assert created is not None
    assert await cache.find_recent(created.session_id) is None, "asked: ended meanwhile"
    assert service.lookups == [created.session_id]

    off, service, _, _ = made(max_age=0)
    created = await off.create(SignedIn("user-1", "alice", "sid-1"))
    assert created is not None
    assert await off.find_recent(created.session_id) is not None
    assert service.lookups == [created.session_id]
