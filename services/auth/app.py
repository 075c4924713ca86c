"""The auth service: username and password pages, the OIDC provider and the SSO cookie."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from fastapi import FastAPI

from services.common import db
from services.common.app import build_app
from services.common.clock import Clock, SystemClock
from services.common.health import postgres_check, redis_check
from services.common.keys import SigningKey, jwks
from services.common.logging import configure_logging
from services.common.redis_client import connect_redis
from services.common.service_client import CallerCheck, ServiceClient
from services.common.tokens import PeerKeys, RemoteKeys, StaticKeys, TokenIssuer, TokenVerifier
from services.common.web import Pages

from .accounts import Accounts
from .audit import AuditLog
from .clients import Clients
from .login_flow import LoginFlow
from .oidc import Provider
from .passwords import Passwords
from .routes import internal, router
from .settings import Settings
from .sign_in import SignInSteps
from .sso_sessions import SsoSessions
from .store import AuthStore
from .throttle import Throttle
from .throttle_store import ThrottleStore

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
MIGRATIONS_DIR = HERE / "migrations"
CLEANUP_INTERVAL_SECONDS = 600


@dataclass
class AuthState:
    settings: Settings
    pool: asyncpg.Pool
    http: httpx.AsyncClient
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
    callers: CallerCheck
    public_jwks: dict  # type: ignore[type-arg]


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()  # type: ignore[call-arg]
    configure_logging("auth", settings.log_level)
    clock = clock or SystemClock()
    oidc_key = SigningKey.from_file(settings.oidc_key_file)
    passwords = Passwords(
        settings.argon2_memory_kib,
        settings.argon2_iterations,
        settings.argon2_parallelism,
        settings.hashing_concurrency,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        signing_key: SigningKey = app.state.signing_key
        pool = await db.create_pool(settings.database_url, "auth")
        redis_client = connect_redis(settings)
        app.state.readiness.add_check("postgres", postgres_check(pool))
        app.state.readiness.add_check("redis", redis_check(redis_client))
        async with httpx.AsyncClient() as http:
            store = AuthStore(pool)
            accounts = Accounts(store, passwords)
            audit = AuditLog(store)
            throttle = Throttle(ThrottleStore(redis_client, settings.redis_key_prefix), settings)
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
            public_jwks = jwks(oidc_key, settings.oidc_published_key_files)
            app.state.auth = AuthState(
                settings=settings,
                pool=pool,
                http=http,
                clock=clock,
                store=store,
                accounts=accounts,
                clients=Clients(store),
                provider=Provider(settings, store, oidc_key, clock),
                flow=LoginFlow(service_tokens, step_verifier, store, settings.step_token_ttl_seconds),
                sso_sessions=SsoSessions(
                    ServiceClient(http, service_tokens, settings.peers.session_url, "session")
                ),
                access_tokens=TokenVerifier(
                    StaticKeys(public_jwks),
                    issuers={settings.issuer},
                    audience=f"{settings.issuer}/userinfo",
                    algorithms=("RS256",),
                    clock=clock,
                ),
                public_jwks=public_jwks,
                audit=audit,
                sign_in=SignInSteps(accounts, throttle, audit),
                callers=CallerCheck(
                    TokenVerifier(
                        PeerKeys(
                            {
                                name: RemoteKeys(http, f"{url}/internal/jwks", clock)
                                for name, url in (
                                    ("mfa", settings.peers.mfa_url),
                                    ("portal", settings.peers.portal_url),
                                )
                            }
                        ),
                        issuers={"mfa", "portal"},
                        audience="auth",
                        clock=clock,
                    )
                ),
            )
            cleanup = asyncio.create_task(_clean_up_expired(store, clock))
            try:
                yield
            finally:
                cleanup.cancel()
                await redis_client.aclose()
                await pool.close()

    app = build_app(
        name="auth",
        settings=settings,
        lifespan=lifespan,
        pages=Pages(HERE / "templates", "/auth/static", "auth"),
        static_prefix="/auth",
        # OAuth clients call these: errors answer as JSON, whatever they accept.
        json_paths=("/auth/token", "/auth/userinfo", "/auth/jwks", "/auth/.well-known/"),
    )
    app.include_router(router)
    app.include_router(internal)
    return app


async def _clean_up_expired(store: AuthStore, clock: Clock) -> None:
    while True:
        try:
            await store.delete_expired(clock.now())
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("cleanup of expired rows failed: %s", type(error).__name__)
        await asyncio.sleep(CLEANUP_INTERVAL_SECONDS)
