"""mfa's part of the admin API (services.contracts.admin): thin, each route its contract's models."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from services.common.errors import NotFound
from services.contracts.admin import (
    MFA_AUDIT,
    MFA_RESET,
    MFA_STATUS,
    AuditEvents,
    AuditQuery,
    MfaReset,
    MfaStatus,
    ResetMfa,
    UserRef,
)

from .admin import MfaAdmin
from .state import State

admin_router = APIRouter()


async def mfa_admin(request: Request, state: State) -> tuple[str, MfaAdmin]:
    """Who sent the admin token (ssoctl: `admin`), and the admin rules; a service's token is refused."""
    if state.admin is None or state.admin_callers is None:
        raise NotFound(detail="this app serves no admin API")
    return await state.admin_callers(request), state.admin


Admin = Annotated[tuple[str, MfaAdmin], Depends(mfa_admin)]


@admin_router.post(MFA_STATUS.path)
async def admin_mfa_status(body: UserRef, admin: Admin) -> MfaStatus:
    caller, rules = admin
    MFA_STATUS.allow(caller)
    return await rules.status(body.user_id)


@admin_router.post(MFA_RESET.path)
async def admin_mfa_reset(body: ResetMfa, admin: Admin) -> MfaReset:
    caller, rules = admin
    MFA_RESET.allow(caller)
    return await rules.reset(body)


@admin_router.post(MFA_AUDIT.path)
async def admin_mfa_audit(body: AuditQuery, admin: Admin) -> AuditEvents:
    caller, rules = admin
    MFA_AUDIT.allow(caller)
    return await rules.audit_events(body)
