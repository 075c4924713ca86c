"""Where portal sessions are kept: the session service, reached with portal's service token."""

import re
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from services.common.errors import DependencyUnavailable
from services.common.service_client import ServiceClient

from .oidc_login import SignedIn

# The shape of a session id; anything else in the cookie is no session, not a question to ask.
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


@dataclass(frozen=True)
class NewPortalSession:
    session_id: str
    expires_at: int


@dataclass(frozen=True)
class PortalSession:
    user_id: str
    username: str
    sid: str
    id_token: str
    expires_at: int


class PortalSessions(Protocol):
    async def create(self, signed_in: SignedIn) -> NewPortalSession | None: ...

    async def find(self, session_id: str) -> PortalSession | None: ...

    async def end(self, session_id: str) -> bool: ...


def looks_like_session_id(value: str | None) -> bool:
    return value is not None and SESSION_ID.match(value) is not None


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise DependencyUnavailable(detail="session service answered without a JSON object")
    return body


class SessionServicePortalSessions:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def create(self, signed_in: SignedIn) -> NewPortalSession | None:
        """None when the SSO session behind the id_token is gone."""
        response = await self.client.call(
            "/internal/portal-sessions",
            {
                "sid": signed_in.sid,
                "user_id": signed_in.user_id,
                "username": signed_in.username,
                "id_token": signed_in.id_token,
            },
        )
        if response.status_code == 404:
            return None
        body = _body(response)
        try:
            return NewPortalSession(str(body["session_id"]), int(body["expires_at"]))
        except (KeyError, TypeError, ValueError) as error:
            raise DependencyUnavailable(detail="session service answer malformed") from error

    async def find(self, session_id: str) -> PortalSession | None:
        if not looks_like_session_id(session_id):
            return None
        response = await self.client.call("/internal/portal-sessions/lookup", {"session_id": session_id})
        if response.status_code == 404:
            return None
        body = _body(response)
        try:
            return PortalSession(
                user_id=str(body["user_id"]),
                username=str(body["username"]),
                sid=str(body["sid"]),
                id_token=str(body["id_token"]),
                expires_at=int(body["expires_at"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DependencyUnavailable(detail="session service answer malformed") from error

    async def end(self, session_id: str) -> bool:
        if not looks_like_session_id(session_id):
            return False
        response = await self.client.call("/internal/portal-sessions/end", {"session_id": session_id})
        return response.status_code != 404 and _body(response).get("ended") is True
