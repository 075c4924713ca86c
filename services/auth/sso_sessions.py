"""auth's view of SSO sessions, which the session service keeps (services.contracts.session)."""

from dataclasses import dataclass
from uuid import UUID

from services.common.errors import DependencyUnavailable
from services.contracts.session import SessionClient, SsoSessionFound


@dataclass(frozen=True)
class SsoSession:
    user_id: UUID
    username: str
    sid: str
    amr: list[str]
    auth_time: int
    expires_at: int


def _session(found: SsoSessionFound) -> SsoSession:
    try:
        user_id = UUID(found.user_id)
    except ValueError as error:
        # auth made every SSO session with one of its user ids: anything else is not an answer.
        raise DependencyUnavailable(detail="session service answered a user id that is no UUID") from error
    return SsoSession(user_id, found.username, found.sid, list(found.amr), found.auth_time, found.expires_at)


class SsoSessions:
    def __init__(self, session_service: SessionClient) -> None:
        self.session_service = session_service

    async def create(
        self, user_id: UUID, username: str, amr: list[str], *, device: str = "", address: str = ""
    ) -> tuple[str, SsoSession]:
        """device: the browser's short label (device_label), address: the client's."""
        started = await self.session_service.start_sso(str(user_id), username, amr, device, address)
        session = SsoSession(user_id, username, started.sid, amr, started.auth_time, started.expires_at)
        return started.session_id, session

    async def lookup(self, session_id: str) -> SsoSession | None:
        """None for no live session, and for a cookie that is no session id (nobody is asked)."""
        found = await self.session_service.find_sso(session_id)
        return None if found is None else _session(found)

    async def end(self, *, session_id: str | None = None, sid: str | None = None) -> None:
        await self.session_service.end_sso(session_id=session_id, sid=sid)

    async def revoke_user(self, user_id: UUID, keep_sid: str | None = None) -> int:
        """Ends the user's sessions (but `keep_sid`'s); how many SSO sessions ended."""
        return await self.session_service.revoke_user(str(user_id), keep_sid=keep_sid)
