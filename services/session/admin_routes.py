"""session's part of the admin API (services.contracts.admin): thin, each route its contract's models."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from services.contracts.admin import (
    SESSIONS_LIST,
    SESSIONS_REVOKE,
    RevokeSessions,
    SessionList,
    SessionsRevoked,
    UserRef,
)

from .state import State

admin_router = APIRouter()


async def admin_caller(request: Request, state: State) -> str:
    """Who sent the admin token (ssoctl: `admin`); a service's own token is refused here."""
    return await state.admin_callers(request)


AdminCaller = Annotated[str, Depends(admin_caller)]


@admin_router.post(SESSIONS_LIST.path)
async def admin_sessions(body: UserRef, state: State, caller: AdminCaller) -> SessionList:
    SESSIONS_LIST.allow(caller)
    return await state.admin.sessions(body.user_id)


@admin_router.post(SESSIONS_REVOKE.path)
async def admin_sessions_revoke(body: RevokeSessions, state: State, caller: AdminCaller) -> SessionsRevoked:
    SESSIONS_REVOKE.allow(caller)
    return await state.admin.revoke(body)
