"""The soak: customers sign in again and again while Redis restarts and a replica is killed.

Bounded and loopback-only: SOAK_CUSTOMERS customers (default 4), each on its own loopback
address, for SOAK_SECONDS (default 15 here; `make soak` runs 60). A third of the way in, Redis
is restarted (SIGTERM, then started again on its port with its append-only file); two thirds
in, one auth replica is killed (SIGKILL). A customer meeting the calm 503 tries again, as the
page asks. At the end it asserts: no enrolment lost, no live SSO session lost, no replayed
code accepted, and only documented answers (2xx, 3xx, 4xx, 503); it prints each count.
"""

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from devstack import datastores
from devstack.stack import Stack

from ..customer import Customer, Page
from ..external_tools import totp_now
from ..faults import throwaway_redis
from ..flows import Account, add_user

SECONDS = float(os.environ.get("SOAK_SECONDS", "15"))
CUSTOMERS = int(os.environ.get("SOAK_CUSTOMERS", "4"))
PATIENCE_SECONDS = 20.0
TOTP_PERIOD = 30
USED = "That code has already been used."


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    enrolled: list[Account] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, event: str) -> None:
        with self.lock:
            self.events[event] += 1

    def problem(self, what: str) -> None:
        with self.lock:
            self.problems.append(what)

    def response(self, response: httpx.Response) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1


class SoakCustomer:
    """One customer: enrols once, then re-enters on the live session and signs in afresh."""

    def __init__(self, stack: Stack, account: Account, tally: Tally, stop: threading.Event) -> None:
        self.stack, self.account, self.tally, self.stop = stack, account, tally, stop
        self.browser = Customer(stack.gateway_url)
        self.browser.http.event_hooks["response"].append(tally.response)
        self.used_step = -1  # the newest TOTP step this customer's codes were accepted for
        self.enrolled = False

    def patient(self, request: Callable[[], Page]) -> Page:
        """The request, again after a pause while it answers the calm 503 (as the page asks)."""
        deadline = time.monotonic() + PATIENCE_SECONDS
        page = request()
        while page.status == 503 and time.monotonic() < deadline:
            self.tally.count("503 met, tried again")
            time.sleep(0.3)
            page = request()
        return page

    def code(self) -> tuple[str, int] | None:
        """A code for a step not used yet (now, or the next one, which the window accepts)."""
        now = int(time.time()) // TOTP_PERIOD
        for offset in (0, 1):
            if now + offset > self.used_step:
                return totp_now(self.account.secret, offset_steps=offset), now + offset
        return None

    def sign_in(self, browser: Customer | None = None) -> Page:
        """From the portal's Login to /mfa/: the username and password steps (in this browser)."""
        browser = browser or self.browser
        page = self.patient(lambda: browser.get("/portal/login"))
        if page.path == "/portal/":
            return page
        assert page.path == "/auth/authorize", (page.status, page.path, page.text[:200])
        username, name, password = page, self.account.name, self.account.password
        page = self.patient(lambda: browser.submit(username, "/auth/login/username", username=name))
        password_page = page
        page = self.patient(lambda: browser.submit(password_page, "/auth/login/password", password=password))
        assert (page.status, page.path) == (200, "/mfa/"), (page.status, page.path, page.text[:200])
        return page

    def finish(self, page: Page) -> bool:
        """Continue, to the portal; False when the step was lost to an outage (start again)."""
        if page.path != "/auth/login/complete" or page.status != 200:
            return False
        link = page.link("continue")
        page = self.patient(lambda: self.browser.get(link))
        return page.path == "/portal/"

    def enrol(self) -> None:
        page = self.sign_in()
        setup = page
        self.account.secret = setup.by_id("totp-secret").replace(" ", "")
        code = self.code()
        assert code is not None
        page = self.patient(lambda: self.browser.submit(setup, "/mfa/setup", code=code[0]))
        self.used_step = code[1]
        if page.path == "/mfa/recovery-codes" and page.status == 200:
            codes = page
            page = self.patient(lambda: self.browser.submit(codes, "/mfa/recovery-codes/saved", saved="yes"))
        if self.finish(page):
            self.enrolled = True
            with self.tally.lock:
                self.tally.enrolled.append(self.account)
            self.tally.count("enrolments")

    def later_sign_in(self) -> None:
        """Sign out everywhere, then username, password and a fresh code; then try to replay it."""
        code = self.code()
        if code is None:
            return
        page = self.patient(lambda: self.browser.get("/portal/"))
        if page.path == "/portal/":
            self.patient(lambda: self.browser.submit(page, "/portal/logout-everywhere"))
        page = self.sign_in()
        if page.soup.find(id="totp-secret") is not None:
            self.tally.problem(f"{self.account.name}: enrolled, but shown a set-up again (a lost enrolment)")
            return
        code_page = page
        page = self.patient(lambda: self.browser.submit(code_page, "/mfa/verify", code=code[0]))
        self.used_step = code[1]
        if not self.finish(page):
            self.tally.count("sign-ins cut short by an outage")
            return
        self.tally.count("later sign-ins")
        self.replay(code[0])

    def replay(self, code: str) -> None:
        """Another browser of an attacker's, with the password, sends the code just used."""
        attacker = Customer(self.stack.gateway_url)
        attacker.http.event_hooks["response"].append(self.tally.response)
        try:
            page = self.sign_in(attacker)
            code_page = page
            page = self.patient(lambda: attacker.submit(code_page, "/mfa/verify", code=code))
            if page.status < 400:
                self.tally.problem(f"{self.account.name}: a replayed code was accepted")
            else:
                self.tally.count("replays refused")
        finally:
            attacker.close()

    def re_entry(self) -> None:
        """Portal logout, then Login: straight back in while the SSO session lives."""
        page = self.patient(lambda: self.browser.get("/portal/"))
        if page.path != "/portal/":
            self.tally.problem(f"{self.account.name}: portal session gone ({page.status} {page.path})")
            return
        portal = page
        self.patient(lambda: self.browser.submit(portal, "/portal/logout"))
        page = self.patient(lambda: self.browser.get("/portal/login"))
        if page.path == "/portal/":
            self.tally.count("re-entries")
        elif page.path == "/auth/authorize":
            self.tally.problem(f"{self.account.name}: the live SSO session was lost")
        else:
            self.tally.count(f"re-entries answered {page.status}")

    def run(self) -> None:
        try:
            self.enrol()
            while not self.stop.is_set() and self.enrolled:
                self.re_entry()
                if not self.stop.is_set():
                    self.later_sign_in()
                time.sleep(0.2)
        except Exception as error:  # reported with the tally
            self.tally.problem(f"{self.account.name}: {error!r}")
        finally:
            self.browser.close()


async def _credentials(stack: Stack, usernames: list[str]) -> dict[str, int]:
    connection = await asyncpg.connect(stack.database_url)
    try:
        rows = await connection.fetch(
            "SELECT u.username, count(c.user_id) AS n FROM auth.users u "
            "LEFT JOIN mfa.totp_credential c ON c.user_id = u.id::text "
            "WHERE u.username = ANY($1) GROUP BY u.username",
            usernames,
        )
    finally:
        await connection.close()
    return {row["username"]: int(row["n"]) for row in rows}


@pytest.fixture(scope="module")
def soak_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state: Path = tmp_path_factory.mktemp("soak-redis")
    with throwaway_redis(state) as record:
        yield record


def test_soak(soak_redis: dict[str, Any], make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(
        stack_options={"redis_server_url": soak_redis["url"], "replicas": {"auth": 2, "session": 2}}
    )
    accounts = [add_user(stack) for _ in range(CUSTOMERS)]
    tally, stop = Tally(), threading.Event()
    customers = [SoakCustomer(stack, account, tally, stop) for account in accounts]
    threads = [threading.Thread(target=customer.run) for customer in customers]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        time.sleep(SECONDS / 3)
        datastores.stop_throwaway_redis(soak_redis)
        datastores.resume_redis(soak_redis)
        tally.count("redis restarts")
        time.sleep(max(0.0, started + 2 * SECONDS / 3 - time.monotonic()))
        stack.kill_replica("auth-2", signal.SIGKILL)
        tally.count("replicas killed")
        time.sleep(max(0.0, started + SECONDS - time.monotonic()))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=PATIENCE_SECONDS * 3)
    credentials = datastores.run_async(_credentials(stack, [account.name for account in tally.enrolled]))

    print(f"\nsoak: {CUSTOMERS} customers, {SECONDS:.0f} s")
    print("  statuses: " + ", ".join(f"{status}: {n}" for status, n in sorted(tally.statuses.items())))
    print("  " + ", ".join(f"{event}: {n}" for event, n in sorted(tally.events.items())))
    assert not any(thread.is_alive() for thread in threads), "a customer did not stop"
    assert not tally.problems, tally.problems
    assert len(tally.enrolled) == CUSTOMERS, tally.events
    assert all(credentials.get(account.name) == 1 for account in tally.enrolled), credentials
    assert tally.events["re-entries"] >= CUSTOMERS, tally.events
    undocumented = {status for status in tally.statuses if not (200 <= status < 500 or status == 503)}
    assert not undocumented, tally.statuses
