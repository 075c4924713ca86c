"""auth's view of SSO sessions, which the session service keeps."""

import re
from dataclasses import dataclass
from uuid import UUID

from services.common.service_client import ServiceClient

# The shape of a session id (the session service's own rule); anything else in the cookie is no
# session, not a question to ask: the session service would refuse it and we would answer 503.
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


@dataclass(frozen=True)
class SsoSession:
    user_id: UUID
    username: str
    sid: str
    amr: list[str]
    auth_time: int
    expires_at: int


def _session(body: dict) -> SsoSession:  # type: ignore[type-arg]
    return SsoSession(
        user_id=UUID(body["user_id"]),
        username=body["username"],
        sid=body["sid"],
        amr=list(body["amr"]),
        auth_time=int(body["auth_time"]),
        expires_at=int(body["expires_at"]),
    )


class SsoSessions:
    def __init__(self, session_service: ServiceClient) -> None:
        self.session_service = session_service

    async def create(self, user_id: UUID, username: str, amr: list[str]) -> tuple[str, SsoSession]:
        response = await self.session_service.call(
            "/internal/sso-sessions", {"user_id": str(user_id), "username": username, "amr": amr}
        )
        body = response.json()
        session = SsoSession(
            user_id=user_id,
            username=username,
            sid=body["sid"],
            amr=amr,
            auth_time=int(body["auth_time"]),
            expires_at=int(body["expires_at"]),
        )
        return body["session_id"], session

    async def lookup(self, session_id: str) -> SsoSession | None:
        if not SESSION_ID.match(session_id):
            return None
        response = await self.session_service.call(
            "/internal/sso-sessions/lookup", {"session_id": session_id}
        )
        return None if response.status_code == 404 else _session(response.json())

    async def end(self, *, session_id: str | None = None, sid: str | None = None) -> None:
        if not SESSION_ID.match(session_id or sid or ""):
            return
        payload = {"session_id": session_id} if session_id else {"sid": sid}
        await self.session_service.call("/internal/sso-sessions/end", payload)

    async def revoke_user(self, user_id: UUID) -> None:
        await self.session_service.call("/internal/users/revoke", {"user_id": str(user_id)})
