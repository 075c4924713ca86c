"""The session service: SSO and portal sessions in Redis, reachable only by its peers."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from redis.exceptions import RedisError

from services.common.app import build_app, serving
from services.common.clock import Clock, SystemClock
from services.common.health import redis_check
from services.common.http_client import peer_http_client
from services.common.keys import SigningKey
from services.common.logging import configure_logging
from services.common.metrics import ACTIVE_SSO_SESSIONS, dependency_failed
from services.common.service_client import CallerCheck, ServiceClient, admin_caller_check
from services.common.tokens import KeySource, PeerKeys, RemoteKeys, TokenIssuer, TokenVerifier
from services.contracts.auth import AuthInternalClient

from .admin import SessionAdmin, open_redis
from .admin_routes import admin_router
from .routes import router
from .sessions import Sessions
from .settings import Settings
from .state import SessionState
from .store import SessionStore

log = logging.getLogger(__name__)

CALLERS = ("auth", "mfa", "portal")
LIVE_COUNT_INTERVAL_SECONDS = 30


StateOpener = Callable[[Settings, SigningKey], AbstractAsyncContextManager[SessionState]]


@asynccontextmanager
async def open_state(
    settings: Settings,
    signing_key: SigningKey,
    *,
    clock: Clock | None = None,
    peer_keys: KeySource | None = None,
) -> AsyncIterator[SessionState]:
    """Redis and the callers' keys for the life of the process, and the live-session gauge.

    peer_keys replaces the callers' published JWKS and clock freezes time (tests: functools.partial).
    """
    clock = clock or SystemClock()
    redis = await open_redis(settings)
    http = peer_http_client()
    peers = settings.peers
    keys = peer_keys or PeerKeys(
        {
            "auth": RemoteKeys(http, f"{peers.auth_url}/internal/jwks", clock),
            "mfa": RemoteKeys(http, f"{peers.mfa_url}/internal/jwks", clock),
            "portal": RemoteKeys(http, f"{peers.portal_url}/internal/jwks", clock),
        }
    )
    store = SessionStore(
        redis,
        settings.key_prefix,
        wait_replicas=settings.redis_wait_replicas,
        wait_timeout_ms=settings.redis_wait_timeout_ms,
    )
    stop_counting = asyncio.Event()
    counting = asyncio.create_task(_count_live_sessions(store, clock, stop_counting))
    try:
        yield SessionState(
            sessions=Sessions(
                store,
                clock,
                sso_lifetime_seconds=settings.sso_lifetime_seconds,
                portal_lifetime_seconds=settings.portal_lifetime_seconds,
                idle_timeout_seconds=settings.idle_timeout_seconds,
                max_portal_sessions_per_sso=settings.max_portal_sessions_per_sso,
            ),
            caller_check=CallerCheck(
                TokenVerifier(keys, issuers=set(CALLERS), audience="session", clock=clock)
            ),
            admin=SessionAdmin(
                store,
                AuthInternalClient(
                    ServiceClient(http, TokenIssuer(signing_key, "session", clock), peers.auth_url, "auth")
                ),
                clock,
            ),
            # The portal's support desk, on the endpoints its contract opens to it.
            admin_callers=admin_caller_check(
                "session", settings.admin_public_key_files, clock, {"portal": keys}
            ),
            readiness_checks={"redis": redis_check(redis)},
        )
    finally:
        stop_counting.set()
        counting.cancel()
        await asyncio.wait({counting}, timeout=2)
        await http.aclose()
        await redis.aclose()


def create_app(settings: Settings | None = None, *, state_opener: StateOpener = open_state) -> FastAPI:
    """state_opener is the seam for tests (the same in all four services)."""
    settings = settings or Settings()  # type: ignore[call-arg]
    configure_logging("session", settings.log_level)
    app = build_app(
        name="session",
        settings=settings,
        lifespan=serving(lambda signing_key: state_opener(settings, signing_key)),
    )
    app.include_router(router)
    app.include_router(admin_router)
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
