"""The session service's internal API (docs/architecture.md, "Session service").

All POST, JSON in and out, service token required; 404 means "no such live session".
"""

import re
from typing import Annotated, Self

from pydantic import Field, StrictBool, StringConstraints, model_validator

from .endpoint import Contract, ContractClient, Endpoint

# The one rule for a session id (and a sid): anything else in a cookie is no session, not a
# question to ask the session service.
SESSION_ID_SHAPE = r"[A-Za-z0-9_-]{1,128}"
_SESSION_ID = re.compile(SESSION_ID_SHAPE)

SessionId = Annotated[str, StringConstraints(pattern=f"^{SESSION_ID_SHAPE}$")]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Amr = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


def is_session_id(value: str | None) -> bool:
    return value is not None and _SESSION_ID.fullmatch(value) is not None


Device = Annotated[str, StringConstraints(max_length=32)]
Address = Annotated[str, StringConstraints(max_length=64)]


class StartSsoSession(Contract):
    user_id: UserId
    username: Username
    amr: list[Amr] = Field(min_length=1, max_length=8)
    # What the customer's Security page shows of it: a short label of the browser (derived by
    # auth from its User-Agent, never the User-Agent itself) and the client address.
    device: Device = ""
    address: Address = ""


class SsoSessionStarted(Contract):
    session_id: SessionId
    sid: SessionId
    auth_time: int
    expires_at: int


class SessionRef(Contract):
    session_id: SessionId


class SsoSessionFound(Contract):
    user_id: UserId
    username: Username
    sid: SessionId
    amr: list[Amr]
    auth_time: int
    expires_at: int


class EndSsoSession(Contract):
    """By its id (the cookie) or by its public name (the id_token's sid): exactly one."""

    session_id: SessionId | None = None
    sid: SessionId | None = None

    @model_validator(mode="after")
    def exactly_one(self) -> Self:
        if (self.session_id is None) == (self.sid is None):
            raise ValueError("give session_id or sid")
        return self


class Ended(Contract):
    ended: StrictBool


class StartPortalSession(Contract):
    """A portal session under the live SSO session `sid` of the user (username: the id_token's)."""

    sid: SessionId
    user_id: UserId
    username: Username


class PortalSessionStarted(Contract):
    session_id: SessionId
    expires_at: int


class PortalSessionFound(Contract):
    user_id: UserId
    username: Username
    sid: SessionId
    expires_at: int


class UserRef(Contract):
    user_id: UserId


class RevokeUser(Contract):
    """Every session of the user, but the SSO session `keep_sid` (the device that asked) and its portal sessions."""

    user_id: UserId
    keep_sid: SessionId | None = None


class UserSession(Contract):
    sid: SessionId
    auth_time: int
    expires_at: int
    device: Device
    address: Address


class UserSessions(Contract):
    sessions: list[UserSession]


class EndUserSession(Contract):
    """One SSO session of this user, by its sid: a sid of someone else's session ends nothing."""

    user_id: UserId
    sid: SessionId


class UserSessionsEnded(Contract):
    ended: int  # how many SSO sessions were live


CALLEE = "session"
# Lookups, ends and revocations are idempotent (ServiceClient may resend them); a start is not:
# a resent start would make a second session.

SSO_SESSION_START = Endpoint(
    CALLEE, "/internal/sso-sessions", frozenset({"auth"}), StartSsoSession, SsoSessionStarted, 201
)
SSO_SESSION_LOOKUP = Endpoint(
    CALLEE, "/internal/sso-sessions/lookup", frozenset({"auth"}), SessionRef, SsoSessionFound, idempotent=True
)
SSO_SESSION_END = Endpoint(
    CALLEE, "/internal/sso-sessions/end", frozenset({"auth"}), EndSsoSession, Ended, idempotent=True
)
PORTAL_SESSION_START = Endpoint(
    CALLEE, "/internal/portal-sessions", frozenset({"portal"}), StartPortalSession, PortalSessionStarted, 201
)
PORTAL_SESSION_LOOKUP = Endpoint(
    CALLEE,
    "/internal/portal-sessions/lookup",
    frozenset({"portal"}),
    SessionRef,
    PortalSessionFound,
    idempotent=True,
)
PORTAL_SESSION_END = Endpoint(
    CALLEE, "/internal/portal-sessions/end", frozenset({"portal"}), SessionRef, Ended, idempotent=True
)
USER_SESSIONS_REVOKE = Endpoint(
    CALLEE,
    "/internal/users/revoke",
    frozenset({"auth", "mfa", "portal"}),
    RevokeUser,
    UserSessionsEnded,
    idempotent=True,
)

USER_SESSIONS_LIST = Endpoint(
    CALLEE, "/internal/users/sessions", frozenset({"portal"}), UserRef, UserSessions, idempotent=True
)
USER_SESSION_END = Endpoint(
    CALLEE, "/internal/users/sessions/end", frozenset({"portal"}), EndUserSession, Ended, idempotent=True
)


class SessionClient(ContractClient):
    """The session service, as auth and the portal call it."""

    async def start_sso(
        self, user_id: str, username: str, amr: list[str], device: str = "", address: str = ""
    ) -> SsoSessionStarted:
        return await self.expect(
            SSO_SESSION_START,
            lambda: StartSsoSession(
                user_id=user_id, username=username, amr=amr, device=device[:32], address=address[:64]
            ),
        )

    async def find_sso(self, session_id: str) -> SsoSessionFound | None:
        if not is_session_id(session_id):
            return None
        return await self.send(SSO_SESSION_LOOKUP, lambda: SessionRef(session_id=session_id))

    async def end_sso(self, *, session_id: str | None = None, sid: str | None = None) -> bool:
        """True if a live session was ended; a malformed id or sid ends nothing and asks nobody."""
        if not is_session_id(session_id or sid):
            return False
        ended = await self.send(
            SSO_SESSION_END,
            lambda: EndSsoSession(session_id=session_id) if session_id else EndSsoSession(sid=sid),
        )
        return ended is not None and ended.ended

    async def start_portal(self, sid: str, user_id: str, username: str) -> PortalSessionStarted | None:
        """None when the SSO session `sid` is gone."""
        return await self.send(
            PORTAL_SESSION_START, lambda: StartPortalSession(sid=sid, user_id=user_id, username=username)
        )

    async def find_portal(self, session_id: str) -> PortalSessionFound | None:
        if not is_session_id(session_id):
            return None
        return await self.send(PORTAL_SESSION_LOOKUP, lambda: SessionRef(session_id=session_id))

    async def end_portal(self, session_id: str) -> bool:
        if not is_session_id(session_id):
            return False
        ended = await self.send(PORTAL_SESSION_END, lambda: SessionRef(session_id=session_id))
        return ended is not None and ended.ended

    async def revoke_user(self, user_id: str, keep_sid: str | None = None) -> int:
        """Ends every SSO and portal session of the user (but `keep_sid`'s); how many SSO sessions ended."""
        revoked = await self.expect(
            USER_SESSIONS_REVOKE, lambda: RevokeUser(user_id=user_id, keep_sid=keep_sid)
        )
        return revoked.ended

    async def sessions_of(self, user_id: str) -> list[UserSession]:
        """The user's live SSO sessions, oldest sign-in first."""
        return (await self.expect(USER_SESSIONS_LIST, lambda: UserRef(user_id=user_id))).sessions

    async def end_session_of(self, user_id: str, sid: str) -> bool:
        """Ends the SSO session `sid` (and its portal sessions) only if it is this user's."""
        if not is_session_id(sid):
            return False
        ended = await self.send(USER_SESSION_END, lambda: EndUserSession(user_id=user_id, sid=sid))
        return ended is not None and ended.ended
