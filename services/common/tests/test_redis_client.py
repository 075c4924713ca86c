"""The Redis factory: the topology from the settings; a store's keys in one hash tag."""

from redis.asyncio import Redis, RedisCluster

from services.common.redis_client import RedisSettings, connect_redis, key_prefix_for


def test_a_prefix_becomes_one_hash_tag_once() -> None:
    assert key_prefix_for("sso:") == "{sso:}"
    assert key_prefix_for("{sso:}") == "{sso:}"


def test_the_settings_choose_the_topology() -> None:
    plain = connect_redis(RedisSettings(redis_url="redis://127.0.0.1:6390/2"))
    assert isinstance(plain, Redis)
    assert plain.connection_pool.connection_kwargs["db"] == 2
    # Reconnects and resends once, and checks a connection idle for a while before using it.
    assert plain.get_retry().get_retries() == 1  # type: ignore[union-attr]
    assert plain.connection_pool.connection_kwargs["health_check_interval"] > 0

    sentinel = connect_redis(
        RedisSettings(
            redis_url="redis://127.0.0.1/3", redis_sentinels=["127.0.0.1:26379"], redis_sentinel_master="m"
        )
    )
    assert isinstance(sentinel, Redis)
    assert type(sentinel.connection_pool).__name__ == "SentinelConnectionPool"
    assert sentinel.connection_pool.service_name == "m"  # type: ignore[attr-defined]

    cluster = connect_redis(RedisSettings(redis_url="redis://127.0.0.1:7000", redis_cluster=True))
    assert isinstance(cluster, RedisCluster)
