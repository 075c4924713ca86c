"""What the portal's routes need, typed, and the dependency that hands it to them."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from services.common.app import state_dependency
from services.common.clock import Clock
from services.common.health import Check
from services.common.web import Pages

from .audit import LogoutAudit
from .oidc_login import OidcLogin
from .security import AccountSecurity, SessionHandles
from .store import PortalSessions
from .support import SupportActivity, SupportDesk


@dataclass(frozen=True)
class SupportState:
    """The support desk: its own sign-in (redirect to /support/callback), rules and session limits."""

    oidc: OidcLogin
    desk: SupportDesk
    activity: SupportActivity


@dataclass(frozen=True)
class PortalState:
    """Made once per process in the app's lifespan."""

    pages: Pages
    oidc: OidcLogin
    sessions: PortalSessions
    logout_audit: LogoutAudit
    clock: Clock
    secure_cookies: bool
    # The portal owns no datastore: /readyz asks nothing beyond the process itself.
    readiness_checks: Mapping[str, Check] = field(default_factory=dict)
    # None: no support desk (route tests on fakes).
    support: SupportState | None = None
    # The Security page's calls to mfa, auth and the session service; None: no such page.
    security: AccountSecurity | None = None
    session_handles: SessionHandles = field(default_factory=lambda: SessionHandles(b""))


State = Annotated[PortalState, Depends(state_dependency(PortalState))]
