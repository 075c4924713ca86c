"""auth's view of SSO sessions, which the session service keeps."""

from dataclasses import dataclass
from uuid import UUID

from services.common.service_client import ServiceClient


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
        response = await self.session_service.call(
            "/internal/sso-sessions/lookup", {"session_id": session_id}
        )
        return None if response.status_code == 404 else _session(response.json())

    async def end(self, *, session_id: str | None = None, sid: str | None = None) -> None:
        payload = {"session_id": session_id} if session_id else {"sid": sid}
        await self.session_service.call("/internal/sso-sessions/end", payload)

    async def revoke_user(self, user_id: UUID) -> None:
        await self.session_service.call("/internal/users/revoke", {"user_id": str(user_id)})
