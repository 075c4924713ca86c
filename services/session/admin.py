"""What administrators (ssoctl, the support desk) see of and do to a user's sessions."""

import logging

from services.common.clock import Clock
from services.common.redis_client import RedisClient, connect_redis
from services.contracts.admin import RevokeSessions, SessionList, SessionsRevoked, SessionView
from services.contracts.auth import AuthInternalClient

from .settings import Settings
from .store import SessionStore

log = logging.getLogger(__name__)


async def open_redis(settings: Settings) -> RedisClient:
    """A client for the sessions' Redis (a server, Sentinel or Cluster); it connects on first use."""
    return connect_redis(settings, decode_responses=True)


class SessionAdmin:
    """The session service owns no database: its admin actions go into auth's audit trail."""

    def __init__(self, store: SessionStore, auth: AuthInternalClient, clock: Clock) -> None:
        self.store = store
        self.auth = auth
        self.clock = clock

    async def sessions(self, user_id: str) -> SessionList:
        now = int(self.clock.now())
        return SessionList(
            sessions=[
                SessionView(
                    sid=record.sid,
                    auth_time=record.auth_time,
                    expires_at=record.expires_at,
                    amr=record.amr,
                    portal_sessions=portal_sessions,
                )
                for record, portal_sessions in await self.store.user_sso_sessions(user_id)
                if record.expires_at > now
            ]
        )

    async def revoke(self, request: RevokeSessions) -> SessionsRevoked:
        """Ends every SSO and portal session of the user, then records who did it in auth's trail."""
        ended = await self.store.end_user_sessions(request.user_id)
        log.info("sessions of user_id=%s revoked by an admin: %s", request.user_id, ended)
        # Raises when auth is away: the sessions have ended, but the operator hears it was not audited.
        await self.auth.record_session_revoked(
            ended,
            user_id=request.user_id,
            username=request.username,
            ip=request.ip,
            user_agent=request.user_agent,
            operator=request.operator,
            reason=request.reason,
        )
        return SessionsRevoked(ended=ended)
