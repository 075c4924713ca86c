"""What the admin CLI (ssoctl) needs from the session service, on the same store code."""

from services.common.redis_client import RedisClient, connect_redis

from .settings import Settings
from .store import SessionStore


async def open_redis(settings: Settings) -> RedisClient:
    """A client for the sessions' Redis (a server, Sentinel or Cluster); it connects on first use."""
    return connect_redis(settings, decode_responses=True)


async def revoke_user(redis: RedisClient, key_prefix: str, user_id: str) -> int:
    """Ends every SSO and portal session of the user; returns how many SSO sessions were live."""
    return await SessionStore(redis, key_prefix).end_user_sessions(user_id)
