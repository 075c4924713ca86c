"""auth's part of the admin API (services.contracts.admin): thin, each route its contract's models."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from services.contracts.admin import (
    AUTH_AUDIT,
    CLIENT_ADD,
    USER_ADD,
    USER_DISABLE,
    USER_ENABLE,
    USER_ROLE,
    USER_UNLOCK,
    USERS_FIND,
    AddClient,
    AddUser,
    AuditEvents,
    AuditQuery,
    ClientCredentials,
    FindUsers,
    SetRole,
    Unlocked,
    UserAction,
    UserList,
    UserView,
)

from .state import State

admin_router = APIRouter()


async def admin_caller(request: Request, state: State) -> str:
    """Who sent the admin token (ssoctl: `admin`); a service's own token is refused here."""
    return await state.admin_callers(request)


AdminCaller = Annotated[str, Depends(admin_caller)]


@admin_router.post(USER_ADD.path, status_code=USER_ADD.status_code)
async def admin_user_add(body: AddUser, state: State, caller: AdminCaller) -> UserView:
    USER_ADD.allow(caller)
    return await state.admin.add(body)


@admin_router.post(USERS_FIND.path)
async def admin_users_find(body: FindUsers, state: State, caller: AdminCaller) -> UserList:
    USERS_FIND.allow(caller)
    return await state.admin.find(body)


@admin_router.post(USER_DISABLE.path)
async def admin_user_disable(body: UserAction, state: State, caller: AdminCaller) -> UserView:
    USER_DISABLE.allow(caller)
    return await state.admin.set_disabled(body, True)


@admin_router.post(USER_ENABLE.path)
async def admin_user_enable(body: UserAction, state: State, caller: AdminCaller) -> UserView:
    USER_ENABLE.allow(caller)
    return await state.admin.set_disabled(body, False)


@admin_router.post(USER_UNLOCK.path)
async def admin_user_unlock(body: UserAction, state: State, caller: AdminCaller) -> Unlocked:
    USER_UNLOCK.allow(caller)
    return await state.admin.unlock(body)


@admin_router.post(USER_ROLE.path)
async def admin_user_role(body: SetRole, state: State, caller: AdminCaller) -> UserView:
    USER_ROLE.allow(caller)
    return await state.admin.set_role(body)


@admin_router.post(CLIENT_ADD.path, status_code=CLIENT_ADD.status_code)
async def admin_client_add(body: AddClient, state: State, caller: AdminCaller) -> ClientCredentials:
    CLIENT_ADD.allow(caller)
    return await state.admin.add_client(body)


@admin_router.post(AUTH_AUDIT.path)
async def admin_audit(body: AuditQuery, state: State, caller: AdminCaller) -> AuditEvents:
    AUTH_AUDIT.allow(caller)
    return await state.admin.audit_events(body)
