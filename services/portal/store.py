"""Where portal sessions are kept: the session service, reached with portal's service token."""

from dataclasses import dataclass
from typing import Protocol

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

    async def end(self, session_id: str) -> bool: ...

    async def end_every_session_of(self, user_id: str) -> int: ...


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

    async def end(self, session_id: str) -> bool:
        return await self.session_service.end_portal(session_id)

    async def end_every_session_of(self, user_id: str) -> int:
        """Every SSO and portal session of the user, on every device; how many ended."""
        return await self.session_service.revoke_user(user_id)
