"""The customer portal: an OIDC client of auth that keeps its sessions in the session service."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI

from services.common.app import build_app
from services.common.clock import Clock, SystemClock
from services.common.keys import jwks
from services.common.logging import configure_logging
from services.common.service_client import ServiceClient
from services.common.tokens import RemoteKeys, StaticKeys, TokenIssuer, TokenVerifier
from services.common.web import Pages

from .audit import LogoutAudit
from .oidc_login import LOGIN_TRANSACTION_AUDIENCE, OidcLogin, TokenEndpoint
from .routes import router
from .settings import Settings
from .store import PortalSessions, SessionServicePortalSessions

TEMPLATES_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class PortalServiceState:
    http: httpx.AsyncClient
    pages: Pages
    oidc: OidcLogin
    sessions: PortalSessions
    logout_audit: LogoutAudit
    clock: Clock
    secure_cookies: bool


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sessions: PortalSessions | None = None,
) -> FastAPI:
    """transport and sessions replace auth and the session service (tests); clock freezes time."""
    settings = settings or Settings()  # type: ignore[call-arg]
    clock = clock or SystemClock()
    configure_logging("portal", settings.log_level)
    # Read now, so a missing or placeholder secret stops the start, not the first sign-in.
    client_secret = settings.read_client_secret()
    pages = Pages(TEMPLATES_DIR, "/portal/static", "portal")
    peers = settings.peers
    issuer_url = settings.oidc_issuer

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        http = httpx.AsyncClient(transport=transport)
        signer = TokenIssuer(app.state.signing_key, "portal", clock)
        own_keys = StaticKeys(jwks(app.state.signing_key))
        app.state.portal = PortalServiceState(
            http=http,
            pages=pages,
            oidc=OidcLogin(
                client_id=settings.client_id,
                issuer_url=issuer_url,
                redirect_uri=f"{peers.public_url}/portal/callback",
                post_logout_redirect_uri=f"{peers.public_url}/",
                token_endpoint=TokenEndpoint(
                    http, f"{peers.auth_url}/auth/token", settings.client_id, client_secret
                ),
                id_token_verifier=TokenVerifier(
                    RemoteKeys(http, f"{peers.auth_url}/auth/jwks", clock),
                    issuers={issuer_url},
                    audience=settings.client_id,
                    algorithms=("RS256",),
                    clock=clock,
                    required=("exp", "iat", "iss", "aud", "sub"),
                ),
                transaction_issuer=signer,
                transaction_verifier=TokenVerifier(
                    own_keys,
                    issuers={"portal"},
                    audience=LOGIN_TRANSACTION_AUDIENCE,
                    algorithms=(app.state.signing_key.algorithm,),
                    clock=clock,
                ),
            ),
            sessions=sessions
            or SessionServicePortalSessions(ServiceClient(http, signer, peers.session_url, "session")),
            logout_audit=LogoutAudit(ServiceClient(http, signer, peers.auth_url, "auth")),
            clock=clock,
            secure_cookies=peers.secure_cookies,
        )
        try:
            yield
        finally:
            await http.aclose()

    app = build_app(name="portal", settings=settings, lifespan=lifespan, pages=pages, static_prefix="/portal")
    app.include_router(router)
    return app
