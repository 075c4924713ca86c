"""What the session service's routes need, typed, and the dependency that hands it to them."""

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from services.common.app import state_dependency
from services.common.health import Check
from services.common.service_client import CallerCheck

from .admin import SessionAdmin
from .sessions import Sessions


@dataclass(frozen=True)
class SessionState:
    """Made once per process in the app's lifespan."""

    sessions: Sessions
    caller_check: CallerCheck
    # The admin API (services.contracts.admin) and who may call it: ssoctl's admin key.
    admin: SessionAdmin
    admin_callers: CallerCheck
    # What /readyz asks (services.common.health): Redis, on a real store.
    readiness_checks: dict[str, Check] = field(default_factory=dict)


State = Annotated[SessionState, Depends(state_dependency(SessionState))]
