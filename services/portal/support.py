"""The support desk's rules: who is staff, what a support session may still do, and the actions.

The desk owns no data: every look-up and action is a call to the owning service's admin API
(services.contracts.admin) with the portal's own service token, which those services accept on
the desk's endpoints only (not user add, role or client add). Each action names the support
user as the operator, with the reason they gave.
"""

import hashlib
import logging
from dataclasses import dataclass
from enum import StrEnum

from services.common.clock import Clock
from services.common.errors import Forbidden, NotFound
from services.common.tokens import InvalidToken, TokenIssuer, TokenVerifier
from services.common.web import _
from services.contracts.admin import (
    AdminApi,
    AuditEvent,
    FindUsers,
    MfaStatus,
    Origin,
    SessionView,
    UserAction,
    UserView,
    origin_of,
)

log = logging.getLogger(__name__)

SUPPORT_ROLE = "support"
AUDIT_EVENTS_SHOWN = 50
ACTIVITY_AUDIENCE = "portal-support-activity"


class Action(StrEnum):
    RESET_MFA = "reset_mfa"
    UNLOCK = "unlock"
    DISABLE = "disable"
    ENABLE = "enable"
    END_SESSIONS = "end_sessions"


@dataclass(frozen=True)
class CustomerFile:
    """What the desk shows of one customer."""

    user: UserView
    mfa: MfaStatus
    sessions: list[SessionView]
    events: list[AuditEvent]


class NotStaff(Forbidden):
    code = "not_support_staff"


class SupportSessionOver(Exception):
    """The support session passed its 8 hours, or sat idle too long: sign in again."""


def _fingerprint(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SupportActivity:
    """The 8-hour limit and the idle limit of a support session, in a cookie the portal signs.

    The cookie is bound to the support session (the hash of its id), carries when the session
    started and when it was last used, and is renewed by each request.
    """

    def __init__(
        self,
        issuer: TokenIssuer,
        verifier: TokenVerifier,
        clock: Clock,
        *,
        max_seconds: int,
        idle_seconds: int,
    ) -> None:
        self.issuer = issuer
        self.verifier = verifier
        self.clock = clock
        self.max_seconds = max_seconds
        self.idle_seconds = idle_seconds

    def start(self, session_id: str) -> str:
        now = int(self.clock.now())
        return self._seal(session_id, started=now, seen=now)

    def _seal(self, session_id: str, *, started: int, seen: int) -> str:
        return self.issuer.issue(
            ACTIVITY_AUDIENCE,
            max(1, started + self.max_seconds - seen),
            {"sub": _fingerprint(session_id), "started": started, "seen": seen},
        )

    async def renew(self, session_id: str, sealed: str | None) -> str:
        """The renewed cookie; SupportSessionOver when the session is too old or was idle too long."""
        if not sealed:
            raise SupportSessionOver("no activity cookie")
        try:
            claims = await self.verifier.verify(sealed)
        except InvalidToken as error:
            raise SupportSessionOver(f"activity cookie refused: {error}") from error
        started, seen = claims.get("started"), claims.get("seen")
        if (
            claims.get("sub") != _fingerprint(session_id)
            or not isinstance(started, int)
            or not isinstance(seen, int)
        ):
            raise SupportSessionOver("activity cookie of another session")
        now = int(self.clock.now())
        if now - started >= self.max_seconds:
            raise SupportSessionOver("8 hours since sign-in")
        if now - seen >= self.idle_seconds:
            raise SupportSessionOver("idle too long")
        return self._seal(session_id, started=started, seen=now)


class SupportDesk:
    def __init__(self, api: AdminApi) -> None:
        self.api = api

    async def staff(self, username: str) -> UserView:
        """The signed-in user, if they are support staff now (the role is asked at every request)."""
        found = await self.api.find_users(FindUsers(query=username))
        user = found.users[0] if found.users else None
        if user is None or user.role != SUPPORT_ROLE or user.disabled:
            raise NotStaff(
                _("This page is for support staff only."), detail=f"{username!r} is not support staff"
            )
        return user

    async def find(self, query: str) -> list[UserView]:
        """The customer of exactly this name, else those whose names start with it."""
        exact = await self.api.find_users(FindUsers(query=query))
        if exact.users:
            return exact.users
        return (await self.api.find_users(FindUsers(query=query, prefix=True))).users

    async def customer(self, username: str) -> CustomerFile:
        user = await self.api.user(username)
        return CustomerFile(
            user=user,
            mfa=await self.api.mfa_status(user),
            sessions=(await self.api.sessions(user)).sessions,
            events=list(reversed(await self.api.audit(user, AUDIT_EVENTS_SHOWN))),
        )

    async def act(self, action: Action, username: str, origin: Origin) -> UserView:
        """Does the action on a customer's account; staff accounts are for ssoctl only."""
        user = await self.api.user(username)
        if user.role == SUPPORT_ROLE:
            raise Forbidden(detail=f"support user {origin.operator} acted on staff account {username}")
        request = UserAction(**origin_of(origin), username=user.username)
        if action is Action.RESET_MFA:
            await self.api.reset_mfa(user, origin)
        elif action is Action.UNLOCK:
            await self.api.unlock(request)
        elif action is Action.DISABLE:
            await self.api.disable(request)
        elif action is Action.ENABLE:
            await self.api.enable(request)
        elif action is Action.END_SESSIONS:
            await self.api.revoke_sessions_of(user, origin)
        else:  # pragma: no cover - the enum is exhaustive
            raise NotFound(detail=f"no action {action}")
        log.info("support action %s on user_id=%s by %s", action.value, user.user_id, origin.operator)
        return user
