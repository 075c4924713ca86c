"""The session service: SSO and portal sessions in Redis, reachable only by its peers."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from redis.exceptions import RedisError

from services.common.app import build_app
from services.common.clock import Clock, SystemClock
from services.common.health import redis_check
from services.common.logging import configure_logging
from services.common.metrics import ACTIVE_SSO_SESSIONS, dependency_failed
from services.common.redis_client import RedisClient
from services.common.service_client import CallerCheck
from services.common.tokens import KeySource, PeerKeys, RemoteKeys, TokenVerifier

from .admin import open_redis
from .routes import router
from .sessions import Sessions
from .settings import Settings
from .store import SessionStore

log = logging.getLogger(__name__)

CALLERS = ("auth", "mfa", "portal")
LIVE_COUNT_INTERVAL_SECONDS = 30


@dataclass(frozen=True)
class SessionServiceState:
    redis: RedisClient
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
        app.state.readiness.add_check("redis", redis_check(redis))
        http = httpx.AsyncClient()
        peers = settings.peers
        keys = peer_keys or PeerKeys(
            {
                "auth": RemoteKeys(http, f"{peers.auth_url}/internal/jwks", clock),
                "mfa": RemoteKeys(http, f"{peers.mfa_url}/internal/jwks", clock),
                "portal": RemoteKeys(http, f"{peers.portal_url}/internal/jwks", clock),
            }
        )
        store = SessionStore(redis, settings.key_prefix)
        app.state.session = SessionServiceState(
            redis=redis,
            http=http,
            sessions=Sessions(
                store,
                clock,
                sso_lifetime_seconds=settings.sso_lifetime_seconds,
                portal_lifetime_seconds=settings.portal_lifetime_seconds,
                idle_timeout_seconds=settings.idle_timeout_seconds,
            ),
            caller_check=CallerCheck(
                TokenVerifier(keys, issuers=set(CALLERS), audience="session", clock=clock)
            ),
        )
        stop_counting = asyncio.Event()
        counting = asyncio.create_task(_count_live_sessions(store, clock, stop_counting))
        try:
            yield
        finally:
            stop_counting.set()
            counting.cancel()
            await asyncio.wait({counting}, timeout=2)
            await http.aclose()
            await redis.aclose()

    app = build_app(name="session", settings=settings, lifespan=lifespan)
    app.include_router(router)
    return app


async def _count_live_sessions(store: SessionStore, clock: Clock, stop: asyncio.Event) -> None:
    """Keeps the gauge sso_active_sso_sessions current: one ZCOUNT every 30 s, never a SCAN."""
    while not stop.is_set():
        try:
            ACTIVE_SSO_SESSIONS.set(await store.count_live_sso(int(clock.now())))
        except (RedisError, OSError) as error:
            dependency_failed("redis")
            log.warning("counting live SSO sessions failed: %s", type(error).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), LIVE_COUNT_INTERVAL_SECONDS)
