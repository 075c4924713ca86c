"""Where portal sessions are kept: the session service, reached with portal's service token."""

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from services.common.clock import Clock
from services.contracts.session import SessionClient

from .oidc_login import SignedIn


@dataclass(frozen=True)
class NewPortalSession:
    session_id: str
    expires_at: int


@dataclass(frozen=True)
class PortalSession:
    user_id: str
    username: str
    sid: str
    expires_at: int


class PortalSessions(Protocol):
    async def create(self, signed_in: SignedIn) -> NewPortalSession | None: ...

    async def find(self, session_id: str) -> PortalSession | None: ...

    async def find_recent(self, session_id: str) -> PortalSession | None:
        """As find, but may answer from a lookup made a moment ago (RecentlyCheckedPortalSessions)."""
        ...

    async def end(self, session_id: str) -> bool: ...

    async def end_every_session_of(self, user_id: str) -> int: ...

    def forget(self, user_id: str) -> None:
        """This process has ended the user's sessions some other way (the support desk)."""
        ...


class SessionServicePortalSessions:
    """PortalSessions over the session service's contract (services.contracts.session)."""

    def __init__(self, session_service: SessionClient) -> None:
        self.session_service = session_service

    async def create(self, signed_in: SignedIn) -> NewPortalSession | None:
        """None when the SSO session behind the id_token is gone."""
        started = await self.session_service.start_portal(
            signed_in.sid, signed_in.user_id, signed_in.username
        )
        return None if started is None else NewPortalSession(started.session_id, started.expires_at)

    async def find(self, session_id: str) -> PortalSession | None:
        found = await self.session_service.find_portal(session_id)
        if found is None:
            return None
        return PortalSession(found.user_id, found.username, found.sid, found.expires_at)

    async def find_recent(self, session_id: str) -> PortalSession | None:
        return await self.find(session_id)

    async def end(self, session_id: str) -> bool:
        return await self.session_service.end_portal(session_id)

    async def end_every_session_of(self, user_id: str) -> int:
        """Every SSO and portal session of the user, on every device; how many ended."""
        return await self.session_service.revoke_user(user_id)

    def forget(self, user_id: str) -> None:
        """Nothing remembered, nothing to forget."""


@dataclass(frozen=True)
class _Checked:
    session: PortalSession
    checked_at: float  # monotonic time the lookup was sent


class RecentlyCheckedPortalSessions:
    """PortalSessions that may answer `find_recent` from a lookup sent at most `max_age` ago.

    What the portal page asks on every request (issue 11): within `max_age` (1 s at most, by
    the setting's bound) a portal session ended elsewhere - Sign out everywhere in another
    process, an admin revoke, the SSO session's end - may still be shown; after it, never. The
    age runs on a monotonic clock from the moment the lookup was *sent*, so a slow answer
    shortens it, and a wall-clock jump cannot stretch it.

    - Only a live session is remembered: a refusal is asked again every time, so a cookie is
      never refused because of an earlier answer, and made-up cookies fill nothing.
    - Keyed by the SHA-256 of the cookie, never the cookie; at most `max_entries` (least
      recently used go first).
    - What this process ends itself is forgotten at once: its logout, Sign out everywhere (every
      session of that user), a new sign-in (which may end the user's oldest portal sessions),
      and the support desk's actions on a customer (`forget`).
      A lookup under way while something is forgotten is not remembered.
    - A session this process has just made is remembered as checked when its start was sent.
    - `find` (landing page, callback, log-out buttons, support desk) always asks.
    """

    def __init__(
        self,
        inner: PortalSessions,
        clock: Clock,
        *,
        max_age: float,
        max_entries: int,
        ticks: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.clock = clock
        self.max_age = max_age
        self.max_entries = max_entries
        self.ticks = ticks
        self._checked: OrderedDict[bytes, _Checked] = OrderedDict()
        self._by_user: dict[str, set[bytes]] = {}
        # Bumped by each forget: a lookup sent before it is not remembered.
        self._forgets = 0

    async def create(self, signed_in: SignedIn) -> NewPortalSession | None:
        """The new session is remembered as checked when its start was sent: the portal page the
        callback sends the browser to need not ask straight away. The session service made it
        under that very SSO session, user and name (its lookup would answer the same), and it
        counts as a check sent then, so an end elsewhere after it is still seen within the bound.
        """
        self._forget_user(signed_in.user_id)
        sent_at, forgets = self.ticks(), self._forgets
        created = await self.inner.create(signed_in)
        if created is not None and self.max_age > 0 and forgets == self._forgets:
            made = PortalSession(signed_in.user_id, signed_in.username, signed_in.sid, created.expires_at)
            self._remember(_cache_key(created.session_id), _Checked(made, sent_at))
        return created

    async def find(self, session_id: str) -> PortalSession | None:
        return await self._lookup(_cache_key(session_id), session_id)

    async def find_recent(self, session_id: str) -> PortalSession | None:
        key = _cache_key(session_id)
        checked = self._checked.get(key)
        if checked is not None:
            if (
                self.ticks() - checked.checked_at < self.max_age
                and checked.session.expires_at > self.clock.now()
            ):
                self._checked.move_to_end(key)
                return checked.session
            self._drop(key)
        return await self._lookup(key, session_id)

    async def end(self, session_id: str) -> bool:
        self._drop(_cache_key(session_id))
        self._forgets += 1
        return await self.inner.end(session_id)

    async def end_every_session_of(self, user_id: str) -> int:
        self._forget_user(user_id)
        return await self.inner.end_every_session_of(user_id)

    async def _lookup(self, key: bytes, session_id: str) -> PortalSession | None:
        sent_at, forgets = self.ticks(), self._forgets
        session = await self.inner.find(session_id)
        if session is None:
            self._drop(key)
        elif self.max_age > 0 and forgets == self._forgets:
            self._remember(key, _Checked(session, sent_at))
        return session

    def _remember(self, key: bytes, checked: _Checked) -> None:
        self._drop(key)
        self._checked[key] = checked
        self._by_user.setdefault(checked.session.user_id, set()).add(key)
        while len(self._checked) > self.max_entries:
            self._drop(next(iter(self._checked)))

    def _drop(self, key: bytes) -> None:
        checked = self._checked.pop(key, None)
        if checked is None:
            return
        keys = self._by_user.get(checked.session.user_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_user[checked.session.user_id]

    def forget(self, user_id: str) -> None:
        self._forget_user(user_id)

    def _forget_user(self, user_id: str) -> None:
        self._forgets += 1
        for key in list(self._by_user.get(user_id, ())):
            self._drop(key)

    def __len__(self) -> int:
        return len(self._checked)


def _cache_key(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()
