"""What mfa's routes need, typed, and the dependency that hands it to them."""

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from services.common.app import state_dependency
from services.common.health import Check
from services.common.service_client import CallerCheck
from services.common.web import Pages

from .admin import MfaAdmin
from .audit import AuditTrail
from .enrollment import Enrollment
from .login_step import LoginSteps
from .recovery_codes import RecoveryCodes
from .settings import Settings


@dataclass(frozen=True)
class MfaState:
    """What the routes need, made once per process in the app's lifespan."""

    settings: Settings
    pages: Pages
    enrollment: Enrollment
    login_steps: LoginSteps
    audit: AuditTrail
    recovery: RecoveryCodes
    # What /readyz asks (services.common.health): the Postgres pool, on a real store.
    readiness_checks: dict[str, Check] = field(default_factory=dict)
    # The admin API (services.contracts.admin) and who may call it; None: not served (route tests).
    admin: MfaAdmin | None = None
    admin_callers: CallerCheck | None = None
    # Who may call mfa's other /internal/ paths (the portal's Security page); None: not served.
    callers: CallerCheck | None = None


State = Annotated[MfaState, Depends(state_dependency(MfaState))]
