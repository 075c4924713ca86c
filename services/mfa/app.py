"""The mfa service: TOTP set-up and checks behind the gateway at /mfa/."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.common import db
from services.common.app import build_app, serving
from services.common.clock import SystemClock
from services.common.health import postgres_check
from services.common.http_client import peer_http_client
from services.common.keys import SigningKey
from services.common.logging import configure_logging
from services.common.service_client import CallerCheck, ServiceClient, admin_caller_check
from services.common.step_tokens import ConsumedStepTokens, PostgresConsumedStepTokens
from services.common.tokens import PeerKeys, RemoteKeys, TokenIssuer, TokenVerifier
from services.common.web import Pages
from services.contracts.auth import AuthInternalClient

from .admin import MfaAdmin
from .admin_routes import admin_router
from .audit import AuditTrail
from .enrollment import Enrollment
from .login_step import LoginSteps
from .recovery_codes import RecoveryCodeHasher, RecoveryCodes, recovery_code_key
from .routes import internal, router
from .secret_box import SecretBox
from .settings import Settings
from .state import MfaState
from .store import MfaStore
from .throttle import AuthThrottle
from .totp import TotpVerifier

TEMPLATES_DIR = Path(__file__).parent / "templates"

StateOpener = Callable[[Settings, Pages, SigningKey], AbstractAsyncContextManager[MfaState]]


@asynccontextmanager
async def open_state(settings: Settings, pages: Pages, signing_key: SigningKey) -> AsyncIterator[MfaState]:
    """Postgres pool and HTTP client for the life of the process."""
    clock = SystemClock()
    pool = await db.create_pool(settings.database_url, "mfa")
    try:
        async with peer_http_client() as http:
            store = MfaStore(pool)
            step_verifier = TokenVerifier(
                PeerKeys({"auth": RemoteKeys(http, f"{settings.peers.auth_url}/internal/jwks")}),
                issuers={"auth"},
                audience="mfa",
                algorithms=("ES256",),
                clock=clock,
            )
            portal_keys = RemoteKeys(http, f"{settings.peers.portal_url}/internal/jwks", clock)
            auth = AuthInternalClient(
                ServiceClient(http, TokenIssuer(signing_key, "mfa", clock), settings.peers.auth_url, "auth")
            )
            box = SecretBox(settings.encryption_key_bytes())
            throttle = AuthThrottle(auth)
            yield MfaState(
                settings=settings,
                pages=pages,
                enrollment=Enrollment(
                    store,
                    box,
                    TotpVerifier(
                        settings.totp_issuer,
                        settings.totp_window_steps,
                        skew_steps=settings.clock_skew_hint_steps,
                    ),
                    clock,
                    throttle,
                    enrollment_ttl_seconds=settings.enrollment_ttl_seconds,
                ),
                login_steps=LoginSteps(
                    TokenIssuer(signing_key, "mfa", clock),
                    step_verifier,
                    ConsumedStepTokens(PostgresConsumedStepTokens(pool), clock),
                    settings.step_token_ttl_seconds,
                    store,
                    clock,
                ),
                audit=AuditTrail(store, clock),
                recovery=RecoveryCodes(
                    store,
                    RecoveryCodeHasher(recovery_code_key(settings.encryption_key_bytes())),
                    box,
                    clock,
                    throttle,
                ),
                readiness_checks={"postgres": postgres_check(pool)},
                admin=MfaAdmin(store, clock),
                # The portal's support desk, on the endpoints its contract opens to it.
                admin_callers=admin_caller_check(
                    "mfa",
                    settings.admin_public_key_files,
                    clock,
                    {"portal": portal_keys},
                ),
                callers=CallerCheck(
                    TokenVerifier(PeerKeys({"portal": portal_keys}), {"portal"}, "mfa", clock=clock)
                ),
            )
    finally:
        await pool.close()


def create_app(settings: Settings | None = None, *, state_opener: StateOpener = open_state) -> FastAPI:
    """state_opener is the seam for tests that run the routes on fakes instead of Postgres."""
    settings = settings or Settings()  # type: ignore[call-arg]  # fields come from the environment
    configure_logging("mfa", settings.log_level)
    # A missing or malformed encryption key stops the start, not the first customer's login.
    settings.encryption_key_bytes()
    pages = Pages(TEMPLATES_DIR, "/mfa/static", "mfa", brand=settings.peers.brand_name, home_url="/mfa/")

    app = build_app(
        name="mfa",
        settings=settings,
        lifespan=serving(lambda signing_key: state_opener(settings, pages, signing_key)),
        pages=pages,
        static_prefix="/mfa",
    )
    app.include_router(router)
    app.include_router(internal)
    app.include_router(admin_router)
    return app
