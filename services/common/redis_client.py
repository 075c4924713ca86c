"""One way to reach Redis for every service: a plain server, a Sentinel-watched master, or a Cluster.

Whatever the topology, a client here rides out a restart or a failover by itself:
- a command that fails on a dead connection (ConnectionError, TimeoutError) reconnects and is
  sent once more, after a short jittered wait. Every command of ours is safe to resend: the
  session writes set the same values again, and a resent sign-in count counts one attempt
  twice, which errs on the careful side;
- a connection idle for HEALTH_CHECK_SECONDS is PINGed before it carries a command, so the
  first request after an outage does not meet the socket the old server closed;
- connect and read timeouts are short: a Redis that is down answers the customer with the
  calm 503 page within a few seconds, never a hung request.
Keys of one store share one hash tag (key_prefix_for), so a Cluster never refuses a
multi-key transaction or script with CROSSSLOT.
"""

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff

HEALTH_CHECK_SECONDS = 5
CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 2.0
RETRIES = 1

RedisClient = Redis | RedisCluster


class RedisSettings(BaseSettings):
    """Where a service's Redis is; each service reads these under its own prefix (SESSION_, AUTH_)."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    # "host:port" of each Sentinel; when set, the master named redis_sentinel_master is asked for
    # (redis_url then only gives the database number and the password, if any).
    redis_sentinels: list[str] = Field(default_factory=list)
    redis_sentinel_master: str = "sso"
    # redis_url names one node of a Redis Cluster; the client learns the others from it.
    redis_cluster: bool = False


def _address(entry: str) -> tuple[str, int]:
    host, _, port = entry.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"a Sentinel address is host:port, not {entry!r}")
    return host, int(port)


def _client_options(decode_responses: bool) -> dict[str, Any]:
    return {
        "decode_responses": decode_responses,
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": COMMAND_TIMEOUT_SECONDS,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=RETRIES),
    }


def connect_redis(settings: RedisSettings, *, decode_responses: bool = False) -> RedisClient:
    """A client for the settings' Redis; it connects on first use."""
    options = _client_options(decode_responses)
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, **options)
    if settings.redis_sentinels:
        url_options = Redis.from_url(settings.redis_url).connection_pool.connection_kwargs
        sentinel = Sentinel(
            [_address(entry) for entry in settings.redis_sentinels],
            sentinel_kwargs={
                "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "socket_timeout": COMMAND_TIMEOUT_SECONDS,
            },
        )
        master: Redis = sentinel.master_for(
            settings.redis_sentinel_master,
            db=url_options.get("db", 0),
            password=url_options.get("password"),
            username=url_options.get("username"),
            **options,
        )
        return master
    return Redis.from_url(settings.redis_url, **options)


def key_prefix_for(prefix: str) -> str:
    """The prefix as one hash tag ("{sso:}"), so every key of a store lands in one Cluster slot.

    A store's transactions and scripts span several keys (a session, its indexes; an account's
    and an address's counters): in one slot they stay atomic on a Cluster as on one server.
    """
    return prefix if "{" in prefix else f"{{{prefix}}}"
