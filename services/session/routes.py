"""The internal JSON API: parse, check the caller, call the session rules, answer."""

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any, Self

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, StringConstraints, model_validator

from services.common.errors import Forbidden, NotFound

from .sessions import Sessions

if TYPE_CHECKING:
    from .app import SessionServiceState

router = APIRouter(prefix="/internal")

SessionId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Amr = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
IdToken = Annotated[str, StringConstraints(min_length=1, max_length=16384)]


class NewSsoSessionBody(BaseModel):
    user_id: UserId
    username: Username
    amr: list[Amr] = Field(min_length=1, max_length=8)


class SessionIdBody(BaseModel):
    session_id: SessionId


class EndSsoSessionBody(BaseModel):
    session_id: SessionId | None = None
    sid: SessionId | None = None

    @model_validator(mode="after")
    def exactly_one(self) -> Self:
        if (self.session_id is None) == (self.sid is None):
            raise ValueError("give session_id or sid")
        return self


class NewPortalSessionBody(BaseModel):
    sid: SessionId
    user_id: UserId
    username: Username
    id_token: IdToken


class UserBody(BaseModel):
    user_id: UserId


def service_state(request: Request) -> "SessionServiceState":
    state: SessionServiceState = request.app.state.session
    return state


def get_sessions(request: Request) -> Sessions:
    return service_state(request).sessions


SessionsDep = Annotated[Sessions, Depends(get_sessions)]


def callers(*allowed: str) -> Any:
    """Requires a service token from one of the allowed callers."""

    async def caller_allowed(request: Request) -> str:
        caller = await service_state(request).caller_check(request)
        if caller not in allowed:
            raise Forbidden(detail=f"caller {caller} may not use {request.url.path}")
        return caller

    return Depends(caller_allowed)


def no_such_session() -> NotFound:
    return NotFound("No such live session.")


@router.post("/sso-sessions", status_code=201, dependencies=[callers("auth")])
async def sso_session_create(body: NewSsoSessionBody, sessions: SessionsDep) -> dict[str, Any]:
    return asdict(await sessions.start_sso(body.user_id, body.username, body.amr))


@router.post("/sso-sessions/lookup", dependencies=[callers("auth")])
async def sso_session_lookup(body: SessionIdBody, sessions: SessionsDep) -> dict[str, Any]:
    record = await sessions.find_sso(body.session_id)
    if record is None:
        raise no_such_session()
    return {
        "user_id": record.user_id,
        "username": record.username,
        "sid": record.sid,
        "amr": record.amr,
        "auth_time": record.auth_time,
        "expires_at": record.expires_at,
    }


@router.post("/sso-sessions/end", dependencies=[callers("auth")])
async def sso_session_end(body: EndSsoSessionBody, sessions: SessionsDep) -> dict[str, bool]:
    return {"ended": await sessions.end_sso(session_id=body.session_id, sid=body.sid)}


@router.post("/portal-sessions", status_code=201, dependencies=[callers("portal")])
async def portal_session_create(body: NewPortalSessionBody, sessions: SessionsDep) -> dict[str, Any]:
    session = await sessions.start_portal(body.sid, body.user_id, body.username, body.id_token)
    if session is None:
        raise no_such_session()
    return asdict(session)


@router.post("/portal-sessions/lookup", dependencies=[callers("portal")])
async def portal_session_lookup(body: SessionIdBody, sessions: SessionsDep) -> dict[str, Any]:
    record = await sessions.find_portal(body.session_id)
    if record is None:
        raise no_such_session()
    return {
        "user_id": record.user_id,
        "username": record.username,
        "sid": record.sid,
        "id_token": record.id_token,
        "expires_at": record.expires_at,
    }


@router.post("/portal-sessions/end", dependencies=[callers("portal")])
async def portal_session_end(body: SessionIdBody, sessions: SessionsDep) -> dict[str, bool]:
    return {"ended": await sessions.end_portal(body.session_id)}


@router.post("/users/revoke", dependencies=[callers("auth", "mfa")])
async def user_sessions_revoke(body: UserBody, sessions: SessionsDep) -> dict[str, int]:
    return {"ended": await sessions.revoke_user(body.user_id)}
