"""Two replicas of every service: a killed one costs no flow, a rolling restart loses no request.

No login state lives in a process (step tokens ride in cookies, sessions in Redis, set-ups in
Postgres), so any replica can take the next step. The gateway, and the peers proxy between the
services, pass a request to the other replica when the first refuses the connection.
"""

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import asyncpg
import pytest

from devstack.datastores import run_async
from devstack.stack import SERVICES, Stack

from .customer import Customer, Page
from .external_tools import totp_now
from .faults import re_entry
from .flows import Account, add_user, first_login, sign_in_to_code_page

LOAD_CUSTOMERS = 3
# A re-entry at most this often per customer: a person's pace, under the gateway's limit on
# GETs that make state (5/s per address; a re-entry makes two of them).
LOAD_ROUND_SECONDS = 0.7


@pytest.fixture(scope="module")
def replicated(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack(stack_options={"replicas": dict.fromkeys(SERVICES, 2)})


@pytest.fixture
def customers(replicated: Stack) -> Iterator[Callable[[], Customer]]:
    made: list[Customer] = []

    def make() -> Customer:
        made.append(Customer(replicated.gateway_url))
        return made[-1]

    yield make
    for customer in made:
        customer.close()


def gateway_statuses_since(stack: Stack, offset: int) -> Counter[int]:
    """The statuses the gateway answered after `offset` bytes of its access log."""
    with stack.gateway_access_log.open("rb") as log:
        log.seek(offset)
        return Counter(json.loads(line)["status"] for line in log.read().splitlines() if line.strip())


def test_a_killed_replica_of_each_service_costs_no_flow(
    replicated: Stack, customers: Callable[[], Customer]
) -> None:
    signed_in, at_password, at_setup, at_code = (customers() for _ in range(4))
    accounts = [add_user(replicated) for _ in range(4)]
    assert first_login(signed_in, accounts[0]).path == "/portal/"
    password_page = at_password.enter_username(at_password.start_login(), accounts[1].name)
    setup_page = sign_in_to_code_page(at_setup, accounts[2])
    enrolled = accounts[3]
    assert first_login(customers(), enrolled).path == "/portal/"
    code_page = sign_in_to_code_page(at_code, enrolled)
    offset = replicated.gateway_access_log.stat().st_size

    # Mid-flow, a crash of one replica of each: no chance to finish anything.
    for service in SERVICES:
        replicated.kill_replica(service, signal.SIGKILL)
    for service in SERVICES:
        replicated.wait_exited(service)
    try:
        re_entry(signed_in)
        page = at_password.enter_password(password_page, accounts[1].password)
        secret = page.by_id("totp-secret").replace(" ", "")
        page = at_password.enter_setup_code(page, totp_now(secret))
        assert at_password.press_continue(page).path == "/portal/"
        secret = setup_page.by_id("totp-secret").replace(" ", "")
        page = at_setup.enter_setup_code(setup_page, totp_now(secret))
        assert at_setup.press_continue(page).path == "/portal/"
        # The next step's code: the one of this step went into the set-up just now.
        page = at_code.enter_code(code_page, totp_now(enrolled.secret, offset_steps=1))
        assert at_code.press_continue(page).path == "/portal/"
        statuses = gateway_statuses_since(replicated, offset)
        assert not [status for status in statuses if status >= 500], statuses
    finally:
        replicated.restart_replica(*SERVICES)


class Load:
    """Customers signing in again and again in threads of their own; every status counted."""

    def __init__(self, stack: Stack, accounts: list[Account]) -> None:
        self.stack = stack
        self.accounts = accounts
        self.stop = threading.Event()
        self.statuses: Counter[int] = Counter()
        self.rounds = 0
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(account,)) for account in accounts]

    def _run(self, account: Account) -> None:
        customer = Customer(self.stack.gateway_url)
        customer.http.event_hooks["response"].append(self._count)
        try:
            assert first_login(customer, account).path == "/portal/"
            while not self.stop.is_set():
                started = time.monotonic()
                re_entry(customer)
                with self.lock:
                    self.rounds += 1
                self.stop.wait(LOAD_ROUND_SECONDS - (time.monotonic() - started))
        except Exception as error:  # the test reports it, with the statuses seen
            with self.lock:
                self.failures.append(f"{account.name}: {error!r}")
        finally:
            customer.close()

    def _count(self, response: object) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1  # type: ignore[attr-defined]

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def test_a_rolling_restart_under_load_loses_no_request(replicated: Stack) -> None:
    accounts = [add_user(replicated) for _ in range(LOAD_CUSTOMERS)]
    offset = replicated.gateway_access_log.stat().st_size
    with Load(replicated, accounts) as load:
        time.sleep(1)
        for service in SERVICES:
            for replica in replicated.replica_names(service):
                # As Kubernetes does it: SIGTERM (readiness false, in-flight requests finish,
                # exit), then the new process, and only once it is ready the next one.
                replicated.kill_replica(replica, signal.SIGTERM)
                replicated.restart_replica(replica)
        rounds_during_restart = load.rounds
    assert not load.failures, (load.failures, load.statuses)
    assert rounds_during_restart >= len(accounts), load.rounds
    statuses = gateway_statuses_since(replicated, offset)
    assert not [status for status in statuses if status >= 500], statuses
    assert set(load.statuses) <= {200, 302, 303}, load.statuses
    print(
        f"rolling restart: {load.rounds} re-entries by {len(accounts)} customers, statuses {dict(statuses)}"
    )


async def _enrolment_rows(stack: Stack, username: str) -> tuple[int, int]:
    """(authenticators, set-ups in progress) of the customer, straight from Postgres."""
    connection = await asyncpg.connect(stack.database_url)
    try:
        user_id = str(await connection.fetchval("SELECT id FROM auth.users WHERE username = $1", username))
        credentials = await connection.fetchval(
            "SELECT count(*) FROM mfa.totp_credential WHERE user_id = $1", user_id
        )
        pending = await connection.fetchval(
            "SELECT count(*) FROM mfa.pending_enrollment WHERE user_id = $1", user_id
        )
    finally:
        await connection.close()
    return int(credentials), int(pending)


@pytest.mark.parametrize("delay_ms", [0, 40])
def test_mfa_killed_mid_confirmation_leaves_no_half_enrolled_customer(
    replicated: Stack, customers: Callable[[], Customer], delay_ms: int
) -> None:
    account = add_user(replicated)
    customer = customers()
    setup_page = sign_in_to_code_page(customer, account)
    secret = setup_page.by_id("totp-secret").replace(" ", "")
    answered: list[Page] = []
    confirming = threading.Thread(
        target=lambda: answered.append(customer.enter_setup_code(setup_page, totp_now(secret))), daemon=True
    )
    confirming.start()
    time.sleep(delay_ms / 1000)
    mfa_replicas = replicated.replica_names("mfa")
    for replica in mfa_replicas:
        replicated.kill_replica(replica, signal.SIGKILL)
    confirming.join(timeout=30)
    # The customer shares its cookie jar with the confirming request: go on only once it is over.
    assert not confirming.is_alive(), "the confirmation still hangs 30 s after mfa was killed"
    replicated.restart_replica(*mfa_replicas)

    # Either the confirmation was committed whole or not at all: one authenticator and no
    # set-up left, or none and the same set-up still waiting.
    credentials, pending = run_async(_enrolment_rows(replicated, account.name))
    assert (credentials, pending) in ((1, 0), (0, 1)), (credentials, pending)
    confirmed = bool(answered) and answered[0].path == "/auth/login/complete"
    if confirmed:
        # mfa answered before it was killed: the customer already has the Continue page, or,
        # when auth could not ask the killed mfa for its keys, the calm 503 and tries again.
        assert (credentials, pending) == (1, 0), (credentials, pending)
        page = answered[0]
        assert page.status in (200, 503), (page.status, page.text[:300])
        if page.status == 503:
            assert "Sign-in is unavailable right now" in page.text, page.text[:300]
            page = customer.get("/auth/login/complete")
    elif credentials and (page := customer.get("/mfa/")).path == "/mfa/recovery-codes":
        # mfa answered the set-up (its recovery codes) and was killed before the customer said
        # they were saved: the same codes are shown again until they are.
        page = customer.save_recovery_codes(page)
    elif credentials:
        if page.soup.find("form", action="/mfa/verify") is None:
            # The step was used up with the confirmation: a calm "start again", then the code page.
            assert "start again" in page.text, page.text[:300]
            page = sign_in_to_code_page(customer, account)
        assert page.soup.find(id="totp-secret") is None, "an enrolled customer is shown a set-up"
        page = customer.enter_code(page, totp_now(secret, offset_steps=1))
    else:
        page = customer.get("/mfa/")
        assert page.by_id("totp-secret").replace(" ", "") == secret, "the QR changed under the customer"
        page = customer.enter_setup_code(page, totp_now(secret))
    assert customer.press_continue(page).path == "/portal/"
    assert run_async(_enrolment_rows(replicated, account.name)) == (1, 0)
    print(
        f"mfa killed {delay_ms} ms into the confirmation: "
        f"{'answered' if confirmed else 'committed' if credentials else 'not committed'}"
    )
