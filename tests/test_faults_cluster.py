"""The session store and auth's counters on a Redis Cluster of three masters.

Every multi-key transaction and script keeps its keys in one hash tag, so the Cluster never
answers CROSSSLOT: sign-in, re-entry, logout and sign out everywhere work as on one server.
"""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from devstack import datastores
from devstack.stack import Stack
from services.common.redis_client import key_prefix_for

from .customer import Customer
from .faults import whole_journey
from .flows import add_user, first_login


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    nodes = datastores.start_throwaway_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield nodes
    finally:
        for node in nodes:
            datastores.stop_throwaway_redis(node)


def test_sign_in_and_sign_out_on_a_redis_cluster(
    cluster: list[dict[str, Any]], make_stack: Callable[..., Stack]
) -> None:
    stack = make_stack(
        stack_options={"redis_server_url": cluster[0]["url"]},
        SESSION_REDIS_CLUSTER="true",
        AUTH_REDIS_CLUSTER="true",
    )
    account, still_signed_in = add_user(stack), add_user(stack)
    customer, other = Customer(stack.gateway_url), Customer(stack.gateway_url)
    try:
        whole_journey(customer, account)
        assert first_login(other, still_signed_in).path == "/portal/"
    finally:
        customer.close()
        other.close()
    # The keys are in the Cluster, all of a store in one slot (so on one master).
    client = redis.RedisCluster.from_url(cluster[0]["url"])
    try:
        for prefix in (stack.redis_prefix, f"{stack.redis_prefix}auth:"):
            tag = key_prefix_for(prefix)
            keys = list(client.scan_iter(match=f"{tag}*", target_nodes=redis.RedisCluster.ALL_NODES))
            assert keys, f"nothing stored under {tag}"
            assert len({client.keyslot(key) for key in keys}) == 1
    finally:
        client.close()
