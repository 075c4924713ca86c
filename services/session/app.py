"""The session service: SSO and portal sessions in Redis, reachable only by its peers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from services.common.app import build_app
from services.common.clock import Clock, SystemClock
from services.common.logging import configure_logging
from services.common.service_client import CallerCheck
from services.common.tokens import KeySource, PeerKeys, RemoteKeys, TokenVerifier

from .admin import open_redis
from .routes import router
from .sessions import Sessions
from .settings import Settings
from .store import SessionStore

CALLERS = ("auth", "mfa", "portal")


@dataclass(frozen=True)
class SessionServiceState:
    redis: Redis
    http: httpx.AsyncClient
    sessions: Sessions
    caller_check: CallerCheck


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    peer_keys: KeySource | None = None,
) -> FastAPI:
    """peer_keys replaces the callers' published JWKS (tests); clock freezes time (tests)."""
    settings = settings or Settings()  # type: ignore[call-arg]
    clock = clock or SystemClock()
    configure_logging("session", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = await open_redis(settings)
        http = httpx.AsyncClient()
        peers = settings.peers
        keys = peer_keys or PeerKeys(
            {
                "auth": RemoteKeys(http, f"{peers.auth_url}/internal/jwks", clock),
                "mfa": RemoteKeys(http, f"{peers.mfa_url}/internal/jwks", clock),
                "portal": RemoteKeys(http, f"{peers.portal_url}/internal/jwks", clock),
            }
        )
        app.state.session = SessionServiceState(
            redis=redis,
            http=http,
            sessions=Sessions(
                SessionStore(redis, settings.key_prefix),
                clock,
                sso_lifetime_seconds=settings.sso_lifetime_seconds,
                portal_lifetime_seconds=settings.portal_lifetime_seconds,
                idle_timeout_seconds=settings.idle_timeout_seconds,
            ),
            caller_check=CallerCheck(
                TokenVerifier(keys, issuers=set(CALLERS), audience="session", clock=clock)
            ),
        )
        try:
            yield
        finally:
            await http.aclose()
            await redis.aclose()

    app = build_app(name="session", settings=settings, lifespan=lifespan)
    app.include_router(router)
    return app
