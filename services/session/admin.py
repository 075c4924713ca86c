"""What the admin CLI (ssoctl) needs from the session service, on the same store code."""

from redis.asyncio import Redis

from .settings import Settings
from .store import SessionStore


async def open_redis(settings: Settings) -> Redis:
    """A client for the sessions' Redis; it connects on first use."""
    client: Redis = Redis.from_url(settings.redis_url, decode_responses=True)
    return client


async def revoke_user(redis: Redis, key_prefix: str, user_id: str) -> int:
    """Ends every SSO and portal session of the user; returns how many SSO sessions were live."""
    return await SessionStore(redis, key_prefix).end_user_sessions(user_id)
