"""The admin API (/internal/admin/ on auth, mfa and session): its requests, answers and client.

Every callee validates with these models and every caller (ssoctl, the support desk) builds
them, so a change on one side is a type error on the other. Each action carries who asks
(`operator`) and why (`reason`); the owning service writes both into its audit trail.
"""

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationError

from services.common.errors import (
    BadRequest,
    Conflict,
    DependencyUnavailable,
    Forbidden,
    NotFound,
    ServiceError,
    Unauthorized,
)
from services.common.http_client import PeerClient, PeerResponse, PeerUnreachable
from services.common.logging import request_id_var
from services.common.service_client import ADMIN_CALLER, SERVICE_TOKEN_TTL_SECONDS, SERVICE_TOKEN_TYPE
from services.common.tokens import TokenIssuer

from .endpoint import AnswerT, Contract, Endpoint, RequestT

log = logging.getLogger(__name__)

Role = Literal["customer", "support"]
ROLES: tuple[Role, ...] = ("customer", "support")
Operator = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.@+:-]+$")]
Reason = Annotated[str, StringConstraints(max_length=500)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=256)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]
Uri = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
# The algorithms auth signs a client's id_tokens with (its `id_token_signed_response_alg`, OIDC
# Dynamic Client Registration 1.0 §2): RS256, the standard default, or ES256, a sixth of the
# CPU to sign.
IdTokenAlg = Literal["RS256", "ES256"]
ID_TOKEN_ALGS: tuple[IdTokenAlg, ...] = ("RS256", "ES256")
AUDIT_LIMIT_MAX = 1000


class Origin(Contract):
    """Who asks for an admin action, from where, and why."""

    operator: Operator
    reason: Reason = ""
    # ssoctl runs on an operator's machine or in the admin pod: no customer address to record.
    ip: str = Field(default="ssoctl", min_length=1, max_length=64)
    user_agent: str = Field(default="ssoctl", max_length=256)


# auth: accounts, clients, auth's audit trail


class AddUser(Origin):
    username: Username
    password: str = Field(min_length=1, max_length=1024)
    role: Role = "customer"


class UserAction(Origin):
    """disable, enable, unlock: on the account of this name."""

    username: Username


class SetRole(UserAction):
    role: Role


class FindUsers(Contract):
    """An exact name, or every name starting with it (prefix)."""

    query: Username
    prefix: bool = False
    limit: int = Field(default=20, ge=1, le=50)


class UserView(Contract):
    user_id: str
    username: str
    role: Role
    disabled: bool
    created_at: datetime
    locked: bool
    # None while locked means: until someone unlocks the account.
    locked_until: datetime | None = None


class UserList(Contract):
    users: list[UserView]


class Unlocked(Contract):
    user: UserView
    was_locked: bool


class AddClient(Origin):
    client_id: ClientId
    redirect_uris: list[Uri] = Field(min_length=1, max_length=16)
    post_logout_redirect_uris: list[Uri] = Field(default_factory=list, max_length=16)
    id_token_signed_response_alg: IdTokenAlg = "RS256"  # noqa: S105 (an algorithm, not a secret)
    replace: bool = False


class ClientCredentials(Contract):
    client_id: str
    client_secret: str


class AuditQuery(Contract):
    """The user's newest `limit` rows, answered oldest first."""

    user_id: UserId
    limit: int = Field(default=AUDIT_LIMIT_MAX, ge=1, le=AUDIT_LIMIT_MAX)


class AuditEvent(Contract):
    at: datetime
    event: str
    outcome: str
    username: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    operator: str | None = None
    reason: str | None = None


class AuditEvents(Contract):
    events: list[AuditEvent]


# mfa: the authenticator


class UserRef(Contract):
    user_id: UserId


class MfaStatus(Contract):
    enrolled: bool
    enrolled_since: datetime | None = None
    setup_pending: bool = False
    # Unused recovery codes (0 without an authenticator); None from an mfa that predates them.
    recovery_codes_left: int | None = None


class ResetMfa(Origin):
    user_id: UserId
    username: Username


class MfaReset(Contract):
    removed: bool


# session: live sessions


class SessionView(Contract):
    sid: str
    auth_time: int
    expires_at: int
    amr: list[str]
    portal_sessions: int


class SessionList(Contract):
    sessions: list[SessionView]


class RevokeSessions(Origin):
    user_id: UserId
    username: Username


class SessionsRevoked(Contract):
    ended: int


# The endpoints: paths unique across the three services. Callers: ssoctl (`admin`) for all; the
# portal (its support desk) for looking a customer up and the desk's five actions, never for
# adding users, roles or clients.

ADMIN_ONLY = frozenset({ADMIN_CALLER})
SUPPORT_DESK = frozenset({ADMIN_CALLER, "portal"})

USER_ADD = Endpoint("auth", "/internal/admin/users", ADMIN_ONLY, AddUser, UserView, 201)
USERS_FIND = Endpoint(
    "auth", "/internal/admin/users/find", SUPPORT_DESK, FindUsers, UserList, idempotent=True
)
USER_DISABLE = Endpoint("auth", "/internal/admin/users/disable", SUPPORT_DESK, UserAction, UserView)
USER_ENABLE = Endpoint("auth", "/internal/admin/users/enable", SUPPORT_DESK, UserAction, UserView)
USER_UNLOCK = Endpoint("auth", "/internal/admin/users/unlock", SUPPORT_DESK, UserAction, Unlocked)
USER_ROLE = Endpoint("auth", "/internal/admin/users/role", ADMIN_ONLY, SetRole, UserView)
CLIENT_ADD = Endpoint("auth", "/internal/admin/clients", ADMIN_ONLY, AddClient, ClientCredentials, 201)
AUTH_AUDIT = Endpoint("auth", "/internal/admin/audit", SUPPORT_DESK, AuditQuery, AuditEvents, idempotent=True)
MFA_STATUS = Endpoint("mfa", "/internal/admin/mfa/status", SUPPORT_DESK, UserRef, MfaStatus, idempotent=True)
MFA_RESET = Endpoint("mfa", "/internal/admin/mfa/reset", SUPPORT_DESK, ResetMfa, MfaReset)
MFA_AUDIT = Endpoint(
    "mfa", "/internal/admin/mfa/audit", SUPPORT_DESK, AuditQuery, AuditEvents, idempotent=True
)
SESSIONS_LIST = Endpoint(
    "session", "/internal/admin/sessions", SUPPORT_DESK, UserRef, SessionList, idempotent=True
)
SESSIONS_REVOKE = Endpoint(
    "session", "/internal/admin/sessions/revoke", SUPPORT_DESK, RevokeSessions, SessionsRevoked
)


# The client

REFUSALS: dict[int, type[ServiceError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}


class AdminApi:
    """Calls the three services' admin API with a service token of `caller` (its own key)."""

    def __init__(
        self,
        http: PeerClient,
        issuer: TokenIssuer,
        *,
        auth_url: str,
        mfa_url: str,
        session_url: str,
    ) -> None:
        self.http = http
        self.issuer = issuer
        self.urls = {
            "auth": auth_url.rstrip("/"),
            "mfa": mfa_url.rstrip("/"),
            "session": session_url.rstrip("/"),
        }

    async def _call(self, endpoint: Endpoint[RequestT, AnswerT], body: RequestT) -> AnswerT:
        """The answer; a refusal (4xx) raises with the service's calm message, anything else 503."""
        service, path = endpoint.callee, endpoint.path
        token = self.issuer.issue(service, SERVICE_TOKEN_TTL_SECONDS, token_type=SERVICE_TOKEN_TYPE)
        url = f"{self.urls[service]}{path}"
        try:
            response = await self.http.post(
                url,
                content=body.model_dump_json(),
                headers={
                    "authorization": f"Bearer {token}",
                    "content-type": "application/json",
                    "x-request-id": request_id_var.get(),
                },
                timeout=15.0,
            )
        except PeerUnreachable as error:
            raise DependencyUnavailable(
                f"cannot reach {service} at {self.urls[service]}", detail=str(error)
            ) from error
        if response.status_code in REFUSALS:
            raise REFUSALS[response.status_code](_message(response, service))
        if response.status_code >= 300:
            raise DependencyUnavailable(f"{service} answered {response.status_code} on {path}")
        try:
            return endpoint.answer.model_validate_json(response.content)
        except ValidationError as error:
            raise DependencyUnavailable(f"{service} sent an answer that does not fit on {path}") from error

    # auth

    async def add_user(self, request: AddUser) -> UserView:
        return await self._call(USER_ADD, request)

    async def find_users(self, query: FindUsers) -> UserList:
        return await self._call(USERS_FIND, query)

    async def user(self, username: str) -> UserView:
        """The account of exactly this name (compared as sign-in compares names)."""
        found = await self.find_users(FindUsers(query=username))
        if not found.users:
            raise NotFound(f"No user named {username!r}")
        return found.users[0]

    async def disable(self, request: UserAction) -> tuple[UserView, int]:
        """Disables the account, then ends every session it has; returns how many ended."""
        user = await self._call(USER_DISABLE, request)
        revoked = await self.revoke_sessions_of(user, request)
        return user, revoked.ended

    async def enable(self, request: UserAction) -> UserView:
        return await self._call(USER_ENABLE, request)

    async def unlock(self, request: UserAction) -> Unlocked:
        return await self._call(USER_UNLOCK, request)

    async def set_role(self, request: SetRole) -> UserView:
        return await self._call(USER_ROLE, request)

    async def add_client(self, request: AddClient) -> ClientCredentials:
        return await self._call(CLIENT_ADD, request)

    async def audit(self, user: UserView, limit: int = AUDIT_LIMIT_MAX) -> list[AuditEvent]:
        """auth's and mfa's rows of the user merged: the newest `limit`, oldest first."""
        query = AuditQuery(user_id=user.user_id, limit=limit)
        rows = (await self._call(AUTH_AUDIT, query)).events
        rows += (await self._call(MFA_AUDIT, query)).events
        rows.sort(key=lambda row: row.at)
        return rows[-limit:]

    # mfa

    async def mfa_status(self, user: UserView) -> MfaStatus:
        return await self._call(MFA_STATUS, UserRef(user_id=user.user_id))

    async def reset_mfa(self, user: UserView, origin: Origin) -> tuple[MfaReset, int]:
        """Forgets the authenticator (the next sign-in sets one up), then ends every session."""
        request = ResetMfa(**origin_of(origin), user_id=user.user_id, username=user.username)
        reset = await self._call(MFA_RESET, request)
        return reset, (await self.revoke_sessions_of(user, origin)).ended

    # session

    async def sessions(self, user: UserView) -> SessionList:
        return await self._call(SESSIONS_LIST, UserRef(user_id=user.user_id))

    async def revoke_sessions_of(self, user: UserView, origin: Origin) -> SessionsRevoked:
        request = RevokeSessions(**origin_of(origin), user_id=user.user_id, username=user.username)
        return await self._call(SESSIONS_REVOKE, request)


def _message(response: PeerResponse, service: str) -> str:
    """The refusal's calm message from the service's JSON body ({error, message})."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    if response.status_code in (401, 403):
        return f"{service} refused the admin token ({message or response.status_code})"
    return str(message or f"{service} answered {response.status_code}")


def origin_of(origin: Origin) -> dict[str, Any]:
    """Just who, why and from where, whatever request the origin came with (to build another)."""
    return {name: getattr(origin, name) for name in Origin.model_fields}
