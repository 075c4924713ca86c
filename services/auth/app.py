"""The auth service: username and password pages, the OIDC provider and the SSO cookie."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import asyncpg
from fastapi import FastAPI

from services.common import db
from services.common.app import build_app, serving
from services.common.clock import Clock, SystemClock
from services.common.health import Check, postgres_check, redis_check
from services.common.http_client import PeerClient, peer_http_client
from services.common.keys import SigningKey, derived_secret, jwks
from services.common.logging import configure_logging
from services.common.redis_client import connect_redis
from services.common.service_client import CallerCheck, ServiceClient, admin_caller_check
from services.common.step_tokens import ConsumedStepTokenRows, ConsumedStepTokens, PostgresConsumedStepTokens
from services.common.tokens import PeerKeys, RemoteKeys, StaticKeys, TokenIssuer, TokenVerifier
from services.common.web import Pages
from services.contracts.session import SessionClient

from .accounts import Accounts
from .admin import UserAdmin
from .admin_routes import admin_router
from .audit import AuditLog
from .clients import Clients
from .device_cookies import DeviceCookies
from .login_flow import LoginFlow
from .oidc import Provider, access_token_jwks, oidc_jwks
from .password_change import PasswordChanges
from .passwords import Passwords
from .routes import internal, router
from .settings import Settings
from .sign_in import SignInSteps
from .sso_sessions import SsoSessions
from .state import AuthState
from .store import AuthStore
from .throttle import Throttle
from .throttle_store import ThrottleStore

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
MIGRATIONS_DIR = HERE / "migrations"

StateOpener = Callable[[Settings, Pages, SigningKey], AbstractAsyncContextManager[AuthState]]


def build_state(
    settings: Settings,
    pages: Pages,
    signing_key: SigningKey,
    *,
    clock: Clock,
    http: PeerClient,
    store: AuthStore,
    throttle_store: ThrottleStore,
    consumed: ConsumedStepTokenRows,
    readiness_checks: Mapping[str, Check],
) -> AuthState:
    """auth's rules on the given datastores; peers (mfa, portal, session) are reached over http."""
    oidc_key = SigningKey.from_file(settings.oidc_key_file)
    passwords = Passwords(
        settings.argon2_memory_kib,
        settings.argon2_iterations,
        settings.argon2_parallelism,
        settings.hashing_concurrency,
    )
    accounts = Accounts(store, passwords)
    audit = AuditLog(store)
    clients = Clients(store, clock, settings.client_uris_cache_seconds)
    throttle = Throttle(throttle_store, settings)
    service_tokens = TokenIssuer(signing_key, "auth", clock)
    step_verifier = TokenVerifier(
        PeerKeys(
            {
                "auth": StaticKeys(jwks(signing_key)),
                "mfa": RemoteKeys(http, f"{settings.peers.mfa_url}/internal/jwks", clock),
            }
        ),
        issuers={"auth", "mfa"},
        audience="auth",
        clock=clock,
    )
    public_jwks = oidc_jwks(oidc_key, settings.oidc_published_key_files)
    sso_sessions = SsoSessions(
        SessionClient(ServiceClient(http, service_tokens, settings.peers.session_url, "session"))
    )
    return AuthState(
        settings=settings,
        pages=pages,
        clock=clock,
        store=store,
        accounts=accounts,
        clients=clients,
        provider=Provider(settings, store, clients, oidc_key, clock, sso_sessions),
        flow=LoginFlow(
            service_tokens,
            step_verifier,
            ConsumedStepTokens(consumed, clock),
            settings.step_token_ttl_seconds,
        ),
        sso_sessions=sso_sessions,
        access_tokens=TokenVerifier(
            # Only the access-token keys: an ES256 id_token, by another key, is refused here.
            StaticKeys(access_token_jwks(oidc_key, settings.oidc_published_key_files)),
            issuers={settings.issuer},
            audience=f"{settings.issuer}/userinfo",
            # Access tokens are ES256, with the key derived from the OIDC key (oidc.access_token_key).
            algorithms=("ES256",),
            clock=clock,
        ),
        public_jwks=public_jwks,
        audit=audit,
        sign_in=SignInSteps(accounts, throttle, audit),
        password_changes=PasswordChanges(accounts, throttle, audit, sso_sessions),
        device_cookies=DeviceCookies(
            derived_secret(signing_key, "device-cookie"), clock, settings.device_cookie_lifetime_seconds
        ),
        callers=CallerCheck(
            TokenVerifier(
                PeerKeys(
                    {
                        name: RemoteKeys(http, f"{url}/internal/jwks", clock)
                        for name, url in (
                            ("mfa", settings.peers.mfa_url),
                            ("portal", settings.peers.portal_url),
                            ("session", settings.peers.session_url),
                        )
                    }
                ),
                issuers={"mfa", "portal", "session"},
                audience="auth",
                clock=clock,
            )
        ),
        admin=UserAdmin(store, accounts, clients, throttle, audit, clock),
        # The portal's support desk, on the endpoints its contract opens to it.
        admin_callers=admin_caller_check(
            "auth",
            settings.admin_public_key_files,
            clock,
            {"portal": RemoteKeys(http, f"{settings.peers.portal_url}/internal/jwks", clock)},
        ),
        readiness_checks=dict(readiness_checks),
    )


@asynccontextmanager
async def open_state(
    settings: Settings, pages: Pages, signing_key: SigningKey, *, clock: Clock | None = None
) -> AsyncIterator[AuthState]:
    """Postgres, Redis and the HTTP client for the life of the process, and the expiry sweep."""
    clock = clock or SystemClock()
    pool = await db.create_pool(settings.database_url, "auth")
    redis_client = connect_redis(settings)
    try:
        async with peer_http_client() as http:
            store = AuthStore(pool)
            state = build_state(
                settings,
                pages,
                signing_key,
                clock=clock,
                http=http,
                store=store,
                throttle_store=ThrottleStore(redis_client, settings.redis_key_prefix),
                consumed=PostgresConsumedStepTokens(pool),
                readiness_checks={"postgres": postgres_check(pool), "redis": redis_check(redis_client)},
            )
            cleanup = asyncio.create_task(_clean_up_expired(store, clock, settings))
            try:
                yield state
            finally:
                cleanup.cancel()
    finally:
        await redis_client.aclose()
        await pool.close()


def create_app(settings: Settings | None = None, *, state_opener: StateOpener = open_state) -> FastAPI:
    """state_opener is the seam for tests (the same in all four services)."""
    settings = settings or Settings()  # type: ignore[call-arg]
    configure_logging("auth", settings.log_level)
    # Read now, so a missing or malformed OIDC key stops the start, not the first sign-in.
    SigningKey.from_file(settings.oidc_key_file)
    pages = Pages(
        HERE / "templates", "/auth/static", "auth", brand=settings.peers.brand_name, home_url="/auth/login"
    )
    app = build_app(
        name="auth",
        settings=settings,
        lifespan=serving(lambda signing_key: state_opener(settings, pages, signing_key)),
        pages=pages,
        static_prefix="/auth",
        # OAuth clients call these: errors answer as JSON, whatever they accept.
        json_paths=("/auth/token", "/auth/userinfo", "/auth/jwks", "/auth/.well-known/"),
    )
    app.include_router(router)
    app.include_router(internal)
    app.include_router(admin_router)
    return app


async def _clean_up_expired(store: AuthStore, clock: Clock, settings: Settings) -> None:
    while True:
        try:
            # Past the access token's lifetime, revoking it on a replay would change nothing.
            await store.delete_expired(clock.now(), settings.access_token_ttl_seconds)
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("cleanup of expired rows failed: %s", type(error).__name__)
        await asyncio.sleep(settings.cleanup_interval_seconds)
