"""The rules of SSO and portal sessions: absolute lifetimes, and children that end with their parent."""

from collections.abc import Callable
from dataclasses import dataclass

from services.common.clock import Clock, random_token

from .store import PortalLookupRefusal, PortalRefusal, SessionStore, SsoRecord, SsoRefusal


@dataclass(frozen=True)
class NewSsoSession:
    session_id: str
    sid: str
    auth_time: int
    expires_at: int


@dataclass(frozen=True)
class NewPortalSession:
    session_id: str
    expires_at: int


@dataclass(frozen=True)
class PortalRecord:
    """A live portal session: who it is for comes from the SSO session it was made from."""

    parent_ref: str
    user_id: str
    username: str
    sid: str
    expires_at: int


class Sessions:
    def __init__(
        self,
        store: SessionStore,
        clock: Clock,
        *,
        sso_lifetime_seconds: int,
        portal_lifetime_seconds: int,
        idle_timeout_seconds: int = 0,
        max_portal_sessions_per_sso: int = 5,
        new_id: Callable[[], str] = random_token,
    ) -> None:
        self.store = store
        self.clock = clock
        self.sso_lifetime = sso_lifetime_seconds
        self.portal_lifetime = portal_lifetime_seconds
        self.idle_timeout = idle_timeout_seconds
        self.max_portal_sessions = max_portal_sessions_per_sso
        self.new_id = new_id

    def _now(self) -> int:
        return int(self.clock.now())

    async def start_sso(
        self, user_id: str, username: str, amr: list[str], *, device: str = "", address: str = ""
    ) -> NewSsoSession:
        now = self._now()
        session_id = self.new_id()
        # The public name of the session (id_token `sid`), a hash of its id (store.ref_of): it
        # can end the session, never use it.
        sid = await self.store.create_sso(
            session_id,
            user_id=user_id,
            username=username,
            amr=amr,
            auth_time=now,
            expires_at=now + self.sso_lifetime,
            ttl_seconds=self.sso_lifetime,
            device=device,
            address=address,
        )
        return NewSsoSession(
            session_id=session_id, sid=sid, auth_time=now, expires_at=now + self.sso_lifetime
        )

    async def find_sso(self, session_id: str) -> SsoRecord | None:
        """The session if it may still be used: not expired, nor idle too long when an idle timeout
        is set, and each lookup then counts as a use of it.

        The checks and the idle timeout's touch are made inside Redis with the read, in one round
        trip: store.FIND_SSO_SCRIPT; FIND_PORTAL_SCRIPT and CREATE_PORTAL_SCRIPT make the same
        checks on a portal session's parent, so a change here is one there too.
        """
        found = await self.store.find_live_sso(
            session_id, now=self._now(), idle_timeout_seconds=self.idle_timeout
        )
        if found is SsoRefusal.IDLE:
            # An idle session ends at its next lookup (rare: only with an idle timeout set).
            await self.store.end_sso(session_id)
        return found if isinstance(found, SsoRecord) else None

    async def end_sso(self, *, session_id: str | None = None, sid: str | None = None) -> bool:
        if session_id is not None:
            return await self.store.end_sso(session_id)
        if sid is not None:
            return await self.store.end_sso_by_sid(sid)
        return False

    async def start_portal(self, sid: str, user_id: str) -> NewPortalSession | None:
        """A portal session under the live SSO session `sid` of this user; None when there is none."""
        session_id = self.new_id()
        # The parent's checks (find_sso's, and that it is this user's) and the idle timeout's touch
        # are made in the store's one script with the write: one Redis round trip.
        outcome = await self.store.create_portal(
            session_id,
            parent_sid=sid,
            user_id=user_id,
            now=self._now(),
            lifetime_seconds=self.portal_lifetime,
            idle_timeout_seconds=self.idle_timeout,
            created_at=self.clock.now(),
            # At most a few per SSO session, the newest: a loop of Logins fills no memory.
            keep=self.max_portal_sessions,
        )
        if outcome is PortalRefusal.PARENT_IDLE:
            # As find_sso ends an idle session it meets (rare: only with an idle timeout set).
            await self.store.end_sso_by_sid(sid)
        if isinstance(outcome, PortalRefusal):
            return None
        return NewPortalSession(session_id, outcome)

    async def find_portal(self, session_id: str) -> PortalRecord | None:
        # The parent is checked on every lookup, and must still list this session: ending
        # either ends it at once. The portal session's checks, then its parent's (find_sso's),
        # and the idle timeout's touch of the parent are made in one Redis round trip:
        # store.FIND_PORTAL_SCRIPT.
        found = await self.store.find_live_portal(
            session_id, now=self._now(), idle_timeout_seconds=self.idle_timeout
        )
        if found.refusal is PortalLookupRefusal.PARENT_IDLE:
            # As find_sso ends an idle session it meets.
            await self.store.end_sso_by_sid(found.parent_sid)
        if found.refusal is not None:
            return None
        return PortalRecord(
            found.parent_sid, found.user_id, found.username, found.parent_sid, found.expires_at
        )

    async def end_portal(self, session_id: str) -> bool:
        return await self.store.end_portal(session_id)

    async def revoke_user(self, user_id: str, keep_sid: str | None = None) -> int:
        """Ends the user's SSO sessions (and their portal sessions) but `keep_sid`, if it is theirs."""
        # Only the user's own session is kept: another user's sid keeps nothing of theirs anyway,
        # as only this user's sessions are ended.
        return await self.store.end_user_sessions(user_id, keep_sid=keep_sid)

    async def live_sessions_of(self, user_id: str) -> list[SsoRecord]:
        """The user's SSO sessions that have not expired, oldest sign-in first."""
        now = self._now()
        records = [record for record, _portals in await self.store.user_sso_sessions(user_id)]
        return sorted((r for r in records if r.expires_at > now), key=lambda r: (r.auth_time, r.sid))

    async def end_session_of(self, user_id: str, sid: str) -> bool:
        """Ends the SSO session `sid` only if it belongs to `user_id`: the portal names the user
        of its own session, the sid comes from a form."""
        record = await self.store.get_sso_by_sid(sid)
        if record is None or record.user_id != user_id:
            return False
        return await self.store.end_sso_by_sid(sid, user_id=user_id)
