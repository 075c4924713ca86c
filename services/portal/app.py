"""The customer portal: an OIDC client of auth that keeps its sessions in the session service."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from services.common.app import build_app, serving
from services.common.clock import Clock, SystemClock
from services.common.http_client import peer_http_client
from services.common.keys import SigningKey, derived_secret, jwks
from services.common.logging import configure_logging
from services.common.service_client import ServiceClient
from services.common.tokens import RemoteKeys, StaticKeys, TokenIssuer, TokenVerifier
from services.common.web import Pages
from services.contracts.admin import AdminApi
from services.contracts.auth import AuthInternalClient
from services.contracts.mfa import MfaClient
from services.contracts.session import SessionClient

from .audit import LogoutAudit
from .oidc_login import LOGIN_TRANSACTION_AUDIENCE, OidcLogin, TokenEndpoint
from .recovery_routes import recovery_router
from .routes import router
from .security import AccountSecurity, ServiceAccountSecurity, SessionHandles
from .security_routes import security_router
from .settings import Settings
from .state import PortalState, SupportState
from .store import PortalSessions, RecentlyCheckedPortalSessions, SessionServicePortalSessions
from .support import ACTIVITY_AUDIENCE, SupportActivity, SupportDesk
from .support_routes import support_router

TEMPLATES_DIR = Path(__file__).parent / "templates"


StateOpener = Callable[[Settings, Pages, SigningKey], AbstractAsyncContextManager[PortalState]]


@asynccontextmanager
async def open_state(
    settings: Settings,
    pages: Pages,
    signing_key: SigningKey,
    *,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sessions: PortalSessions | None = None,
    security: AccountSecurity | None = None,
) -> AsyncIterator[PortalState]:
    """The HTTP client to auth and the session service for the life of the process.

    transport, sessions and security replace auth, mfa and the session service, clock freezes time
    (tests: functools.partial).
    """
    clock = clock or SystemClock()
    client_secret = settings.read_client_secret()
    peers = settings.peers
    issuer_url = settings.oidc_issuer
    signer = TokenIssuer(signing_key, "portal", clock)
    own_keys = StaticKeys(jwks(signing_key))
    async with peer_http_client(transport) as http:
        id_token_keys = RemoteKeys(http, f"{peers.auth_url}/auth/jwks", clock)

        def oidc_login(callback_path: str) -> OidcLogin:
            """The portal's OIDC client, coming back to callback_path (the portal or the desk)."""
            return OidcLogin(
                client_id=settings.client_id,
                issuer_url=issuer_url,
                redirect_uri=f"{peers.public_url}{callback_path}",
                post_logout_redirect_uri=f"{peers.public_url}/",
                token_endpoint=TokenEndpoint(
                    http, f"{peers.auth_url}/auth/token", settings.client_id, client_secret
                ),
                id_token_verifier=TokenVerifier(
                    id_token_keys,
                    issuers={issuer_url},
                    audience=settings.client_id,
                    # The configured asymmetric algs only, never the header's choice: no none,
                    # no HS256 keyed with a public key; the kid's key must be of the header
                    # alg's type (TokenVerifier), so RS256 never verifies under the EC key.
                    algorithms=settings.id_token_signed_response_algs,
                    clock=clock,
                    required=("exp", "iat", "iss", "aud", "sub"),
                ),
                transaction_issuer=signer,
                transaction_verifier=TokenVerifier(
                    own_keys,
                    issuers={"portal"},
                    audience=LOGIN_TRANSACTION_AUDIENCE,
                    algorithms=(signing_key.algorithm,),
                    clock=clock,
                ),
            )

        yield PortalState(
            pages=pages,
            oidc=oidc_login("/portal/callback"),
            sessions=sessions
            or RecentlyCheckedPortalSessions(
                SessionServicePortalSessions(
                    SessionClient(ServiceClient(http, signer, peers.session_url, "session"))
                ),
                clock,
                max_age=settings.session_check_seconds,
                max_entries=settings.session_check_entries,
            ),
            logout_audit=LogoutAudit(AuthInternalClient(ServiceClient(http, signer, peers.auth_url, "auth"))),
            clock=clock,
            secure_cookies=peers.secure_cookies,
            security=security
            or ServiceAccountSecurity(
                MfaClient(ServiceClient(http, signer, peers.mfa_url, "mfa")),
                AuthInternalClient(ServiceClient(http, signer, peers.auth_url, "auth")),
                SessionClient(ServiceClient(http, signer, peers.session_url, "session")),
            ),
            session_handles=SessionHandles(derived_secret(signing_key, "session-handle")),
            support=SupportState(
                oidc=oidc_login("/support/callback"),
                desk=SupportDesk(
                    AdminApi(
                        http,
                        signer,
                        auth_url=peers.auth_url,
                        mfa_url=peers.mfa_url,
                        session_url=peers.session_url,
                    )
                ),
                activity=SupportActivity(
                    signer,
                    TokenVerifier(own_keys, {"portal"}, ACTIVITY_AUDIENCE, clock=clock),
                    clock,
                    max_seconds=settings.support_max_seconds,
                    idle_seconds=settings.support_idle_seconds,
                ),
            ),
        )


def create_app(settings: Settings | None = None, *, state_opener: StateOpener = open_state) -> FastAPI:
    """state_opener is the seam for tests (the same in all four services)."""
    settings = settings or Settings()  # type: ignore[call-arg]
    configure_logging("portal", settings.log_level)
    # Read now, so a missing or placeholder secret stops the start, not the first sign-in.
    settings.read_client_secret()
    pages = Pages(TEMPLATES_DIR, "/portal/static", "portal", brand=settings.peers.brand_name, home_url="/")
    app = build_app(
        name="portal",
        settings=settings,
        lifespan=serving(lambda signing_key: state_opener(settings, pages, signing_key)),
        pages=pages,
        static_prefix="/portal",
    )
    app.include_router(router)
    app.include_router(security_router)
    app.include_router(recovery_router)
    app.include_router(support_router)
    return app
