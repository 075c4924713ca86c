"""What auth's routes need, typed, and the dependency that hands it to them."""

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends

from services.common.app import state_dependency
from services.common.clock import Clock
from services.common.health import Check
from services.common.service_client import CallerCheck
from services.common.tokens import TokenVerifier
from services.common.web import Pages

from .accounts import Accounts
from .admin import UserAdmin
from .audit import AuditLog
from .clients import Clients
from .device_cookies import DeviceCookies
from .login_flow import LoginFlow
from .oidc import Provider
from .password_change import PasswordChanges
from .settings import Settings
from .sign_in import SignInSteps
from .sso_sessions import SsoSessions
from .store import AuthStore


@dataclass(frozen=True)
class AuthState:
    """Made once per process in the app's lifespan."""

    settings: Settings
    pages: Pages
    clock: Clock
    store: AuthStore
    accounts: Accounts
    clients: Clients
    provider: Provider
    flow: LoginFlow
    sso_sessions: SsoSessions
    access_tokens: TokenVerifier
    audit: AuditLog
    sign_in: SignInSteps
    device_cookies: DeviceCookies
    # The portal's Security page: a customer changes their own password.
    password_changes: PasswordChanges
    # Who may call /internal/ (mfa and portal's service tokens); each route names its callers.
    callers: CallerCheck
    public_jwks: dict[str, Any]
    # The admin API (services.contracts.admin) and who may call it: ssoctl's admin key.
    admin: UserAdmin
    admin_callers: CallerCheck
    # What /readyz asks (services.common.health): Postgres and Redis, on real stores.
    readiness_checks: dict[str, Check] = field(default_factory=dict)


State = Annotated[AuthState, Depends(state_dependency(AuthState))]
