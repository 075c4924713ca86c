"""The internal JSON API: parse, check the caller, call the session rules, answer.

Every request and answer is a model of services.contracts.session, which the callers use too;
answers are built field by field, so a field that drifts is a type error, not a runtime one.
"""

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.types import DecoratedCallable

from services.common.errors import NotFound
from services.contracts.endpoint import Endpoint
from services.contracts.session import (
    PORTAL_SESSION_END,
    PORTAL_SESSION_LOOKUP,
    PORTAL_SESSION_START,
    SSO_SESSION_END,
    SSO_SESSION_LOOKUP,
    SSO_SESSION_START,
    USER_SESSION_END,
    USER_SESSIONS_LIST,
    USER_SESSIONS_REVOKE,
    Ended,
    EndSsoSession,
    EndUserSession,
    PortalSessionFound,
    PortalSessionStarted,
    RevokeUser,
    SessionRef,
    SsoSessionFound,
    SsoSessionStarted,
    StartPortalSession,
    StartSsoSession,
    UserRef,
    UserSession,
    UserSessions,
    UserSessionsEnded,
)

from .state import State

router = APIRouter()


def callers_of(endpoint: Endpoint[Any, Any]) -> Any:
    """Requires a service token from one of the endpoint's callers (its contract's allow list)."""

    async def caller_allowed(request: Request, state: State) -> str:
        caller = await state.caller_check(request)
        endpoint.allow(caller)
        return caller

    return Depends(caller_allowed)


def route(endpoint: Endpoint[Any, Any]) -> Callable[[DecoratedCallable], DecoratedCallable]:
    return router.post(endpoint.path, status_code=endpoint.status_code, dependencies=[callers_of(endpoint)])


def no_such_session() -> NotFound:
    return NotFound("No such live session.")


@route(SSO_SESSION_START)
async def sso_session_create(body: StartSsoSession, state: State) -> SsoSessionStarted:
    started = await state.sessions.start_sso(
        body.user_id, body.username, body.amr, device=body.device, address=body.address
    )
    return SsoSessionStarted(
        session_id=started.session_id,
        sid=started.sid,
        auth_time=started.auth_time,
        expires_at=started.expires_at,
    )


@route(SSO_SESSION_LOOKUP)
async def sso_session_lookup(body: SessionRef, state: State) -> SsoSessionFound:
    record = await state.sessions.find_sso(body.session_id)
    if record is None:
        raise no_such_session()
    return SsoSessionFound(
        user_id=record.user_id,
        username=record.username,
        sid=record.sid,
        amr=record.amr,
        auth_time=record.auth_time,
        expires_at=record.expires_at,
    )


@route(SSO_SESSION_END)
async def sso_session_end(body: EndSsoSession, state: State) -> Ended:
    return Ended(ended=await state.sessions.end_sso(session_id=body.session_id, sid=body.sid))


@route(PORTAL_SESSION_START)
async def portal_session_create(body: StartPortalSession, state: State) -> PortalSessionStarted:
    session = await state.sessions.start_portal(body.sid, body.user_id)
    if session is None:
        raise no_such_session()
    return PortalSessionStarted(session_id=session.session_id, expires_at=session.expires_at)


@route(PORTAL_SESSION_LOOKUP)
async def portal_session_lookup(body: SessionRef, state: State) -> PortalSessionFound:
    record = await state.sessions.find_portal(body.session_id)
    if record is None:
        raise no_such_session()
    return PortalSessionFound(
        user_id=record.user_id,
        username=record.username,
        sid=record.sid,
        expires_at=record.expires_at,
    )


@route(PORTAL_SESSION_END)
async def portal_session_end(body: SessionRef, state: State) -> Ended:
    return Ended(ended=await state.sessions.end_portal(body.session_id))


@route(USER_SESSIONS_REVOKE)
async def user_sessions_revoke(body: RevokeUser, state: State) -> UserSessionsEnded:
    return UserSessionsEnded(ended=await state.sessions.revoke_user(body.user_id, keep_sid=body.keep_sid))


@route(USER_SESSIONS_LIST)
async def user_sessions_list(body: UserRef, state: State) -> UserSessions:
    return UserSessions(
        sessions=[
            UserSession(
                sid=record.sid,
                auth_time=record.auth_time,
                expires_at=record.expires_at,
                device=record.device,
                address=record.address,
            )
            for record in await state.sessions.live_sessions_of(body.user_id)
        ]
    )


@route(USER_SESSION_END)
async def user_session_end(body: EndUserSession, state: State) -> Ended:
    return Ended(ended=await state.sessions.end_session_of(body.user_id, body.sid))
