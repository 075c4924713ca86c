"""Redis Sentinel: the master dies, a replica takes over, and no customer notices more than a 503.

A real master, one replica and three Sentinels (quorum 2) on free loopback ports. The session
service WAITs for the replica after every session write (SESSION_REDIS_WAIT_REPLICAS=1), so a
sign-in the customer saw finish is on the replica when the master dies: it is still live after
the failover. Nothing answers 500 (or 502) meanwhile.
"""

import json
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from devstack import datastores
from devstack.stack import Stack

from .customer import Customer
from .faults import re_entry
from .flows import add_user, first_login

MASTER_NAME = "sso"
FAILOVER_TIMEOUT_SECONDS = 30


def _until(what: str, check: Callable[[], bool], timeout: float = FAILOVER_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


def _client(record: dict[str, Any]) -> redis.Redis:
    return redis.Redis.from_url(record["url"], socket_timeout=2, decode_responses=True)


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("sentinel")
    started: list[dict[str, Any]] = []
    try:
        master = datastores.start_throwaway_redis(state, name="master")
        started.append(master)
        replica = datastores.start_throwaway_redis(
            state, name="replica", extra_args=("--replicaof", "127.0.0.1", str(master["port"]))
        )
        started.append(replica)
        sentinels = []
        for n in range(3):
            sentinels.append(
                datastores.start_throwaway_sentinel(state, f"sentinel-{n}", MASTER_NAME, master["port"])
            )
            started.append(sentinels[-1])

        def ready() -> bool:
            with _client(master) as client:
                if client.info("replication").get("connected_slaves") != 1:
                    return False
            for sentinel in sentinels:
                with _client(sentinel) as client:
                    if (
                        len(client.sentinel_sentinels(MASTER_NAME)) != 2
                        or len(client.sentinel_slaves(MASTER_NAME)) != 1
                    ):
                        return False
            return True

        _until("the replica and the Sentinels know each other", ready)
        yield {"master": master, "replica": replica, "sentinels": sentinels}
    finally:
        for record in reversed(started):
            datastores.stop_throwaway_redis(record)


def test_a_sentinel_failover_keeps_every_live_session(
    topology: dict[str, Any], make_stack: Callable[..., Stack]
) -> None:
    master, replica, sentinels = topology["master"], topology["replica"], topology["sentinels"]
    addresses = json.dumps([f"127.0.0.1:{sentinel['port']}" for sentinel in sentinels])
    stack = make_stack(
        stack_options={"redis_server_url": master["url"]},
        SESSION_REDIS_SENTINELS=addresses,
        SESSION_REDIS_SENTINEL_MASTER=MASTER_NAME,
        SESSION_REDIS_WAIT_REPLICAS=1,
        AUTH_REDIS_SENTINELS=addresses,
        AUTH_REDIS_SENTINEL_MASTER=MASTER_NAME,
    )
    signed_in = [Customer(stack.gateway_url) for _ in range(3)]
    newcomer = Customer(stack.gateway_url)
    try:
        for customer in signed_in:
            assert first_login(customer, add_user(stack)).path == "/portal/"
        offset = stack.gateway_access_log.stat().st_size

        datastores.stop_throwaway_redis(master, signal.SIGKILL)

        def promoted() -> bool:
            with _client(sentinels[0]) as client:
                _host, port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
            return int(port) == replica["port"]

        # Meanwhile a customer keeps trying: a calm 503 at worst, until the replica has taken over.
        def signed_in_again() -> bool:
            page = signed_in[0].get("/portal/")
            assert page.status in (200, 503), (page.status, page.text[:200])
            return page.status == 200 and page.path == "/portal/"

        _until("the Sentinels promote the replica", lambda: (signed_in_again(), promoted())[1])
        _until("the portal answers again", signed_in_again)

        # Every session acknowledged before the master died is still live.
        for customer in signed_in:
            re_entry(customer)
        # And new sign-ins work, on the new master.
        assert first_login(newcomer, add_user(stack)).path == "/portal/"
        with stack.gateway_access_log.open("rb") as log:
            log.seek(offset)
            statuses = [json.loads(line)["status"] for line in log.read().splitlines() if line.strip()]
        assert not [status for status in statuses if status >= 500 and status != 503], statuses
        print(
            f"sentinel failover: statuses after the kill {sorted(set(statuses))}, 503s: {statuses.count(503)}"
        )
    finally:
        for customer in [*signed_in, newcomer]:
            customer.close()
