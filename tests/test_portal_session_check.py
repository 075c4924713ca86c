"""The portal page remembers a session check for at most 1 second (PORTAL_SESSION_CHECK_SECONDS).

Through nginx, with two portal processes (each remembers on its own): a session ended where a
process cannot see it - an admin revoke with ssoctl, Sign out everywhere handled by the other
process - is refused by every portal page asked for 1 s after the end, whichever process
answers. The page is polled as fast as a client can, never slept on.
"""

import re
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from devstack.stack import Stack

from .customer import Customer
from .external_tools import totp_now
from .flows import Account, add_user, first_login, sign_in_to_code_page

BOUND_SECONDS = 1.0
# Polled this long after the end: every request sent from BOUND_SECONDS on must be refused.
POLL_SECONDS = 1.6
LOOKUPS = re.compile(
    r'^sso_http_request_duration_seconds_count\{[^}]*route="/internal/portal-sessions/lookup"[^}]*\} (\S+)$',
    re.MULTILINE,
)


@pytest.fixture(scope="module")
def two_portals(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack(stack_options={"replicas": {"portal": 2}})


@pytest.fixture
def customers(two_portals: Stack) -> Iterator[Callable[[], Customer]]:
    made: list[Customer] = []

    def make() -> Customer:
        made.append(Customer(two_portals.gateway_url))
        return made[-1]

    yield make
    for customer in made:
        customer.close()


def signed_in_twice(stack: Stack, customers: Callable[[], Customer]) -> tuple[Account, Customer, Customer]:
    """A customer signed in on a laptop and a phone (two SSO sessions)."""
    account = add_user(stack)
    laptop, phone = customers(), customers()
    assert first_login(laptop, account).path == "/portal/"
    page = sign_in_to_code_page(phone, account)
    # The laptop used this step's code; the next step's is in the window and still unused.
    assert (
        phone.press_continue(phone.enter_code(page, totp_now(account.secret, offset_steps=1))).path
        == "/portal/"
    )
    return account, laptop, phone


def shows_portal(customer: Customer) -> bool:
    response = customer.http.get("/portal/", follow_redirects=False)
    assert response.status_code in (200, 303), response.status_code
    return response.status_code == 200


def warm(customer: Customer) -> None:
    """The page asked a few times: both portal processes remember the session."""
    for _ in range(6):
        assert shows_portal(customer)


def cookie_of(customer: Customer) -> str:
    value = customer.http.cookies.get("portal_session", path="/")
    assert value
    return str(value)


def shown_with(client: httpx.Client, cookie: str) -> bool:
    """The portal page for this cookie, sent as is: a refusal clears a browser's cookie, but a
    stolen cookie would be sent again, and each request may reach either portal process."""
    response = client.get("/portal/", headers={"cookie": f"portal_session={cookie}"})
    client.cookies.clear()  # only the cookie given, every time
    assert response.status_code in (200, 303), response.status_code
    return response.status_code == 200


def assert_refused_within_the_bound(stack: Stack, ended_at: float, *cookies: str) -> None:
    """Each cookie asks for the page in turn, as fast as it goes, until POLL_SECONDS after the
    end: every request sent BOUND_SECONDS or more after it must be refused."""
    answers: dict[int, list[tuple[float, bool]]] = {n: [] for n in range(len(cookies))}
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        while (sent := time.monotonic() - ended_at) < POLL_SECONDS:
            for n, cookie in enumerate(cookies):
                answers[n].append((round(sent, 3), shown_with(client, cookie)))
    for n, asked in answers.items():
        late = [sent for sent, shown in asked if sent >= BOUND_SECONDS]
        shown_late = [sent for sent, shown in asked if shown and sent >= BOUND_SECONDS]
        assert len(late) >= 4, f"too few requests after the bound to tell: {asked}"
        assert not shown_late, f"session {n} shown {BOUND_SECONDS} s or more after its end, at {shown_late}"


def portal_lookups(stack: Stack) -> float:
    text = httpx.get(f"{stack.service_url('session')}/metrics", timeout=10).text
    return sum(float(value) for value in LOOKUPS.findall(text))


def test_the_portal_page_asks_the_session_service_at_most_once_a_second_per_process(
    two_portals: Stack, customers: Callable[[], Customer]
) -> None:
    customer = customers()
    assert first_login(customer, add_user(two_portals)).path == "/portal/"
    # The callback's process remembers the session it made as checked then: let that run out,
    # so the pages below must ask.
    time.sleep(BOUND_SECONDS)
    before, started = portal_lookups(two_portals), time.monotonic()
    pages = 40
    for _ in range(pages):
        assert shows_portal(customer)
    seconds = time.monotonic() - started

    asked = portal_lookups(two_portals) - before
    # Each of the two processes asks at most once per second it serves the page.
    assert 1 <= asked <= 2 * (int(seconds / BOUND_SECONDS) + 1) and asked < pages, (asked, seconds)


def test_an_admin_revoke_is_refused_by_every_portal_page_within_a_second(
    two_portals: Stack, customers: Callable[[], Customer]
) -> None:
    account, laptop, phone = signed_in_twice(two_portals, customers)
    warm(laptop)
    warm(phone)
    cookies = cookie_of(laptop), cookie_of(phone)

    result = two_portals.ssoctl("session", "revoke", account.name)
    ended_at = time.monotonic()
    assert result.returncode == 0, result.stderr

    assert_refused_within_the_bound(two_portals, ended_at, *cookies)


def test_sign_out_everywhere_is_refused_on_the_other_device_within_a_second(
    two_portals: Stack, customers: Callable[[], Customer]
) -> None:
    _account, laptop, phone = signed_in_twice(two_portals, customers)
    someone_else = customers()
    assert first_login(someone_else, add_user(two_portals)).path == "/portal/"
    warm(phone)
    cookie = cookie_of(phone)

    # Handled by one portal process; the phone's page may be asked of the other.
    after = laptop.submit(laptop.get("/portal/"), "/portal/logout-everywhere")
    ended_at = time.monotonic()
    assert after.path == "/" and "signed out on every device" in after.text

    assert_refused_within_the_bound(two_portals, ended_at, cookie)
    assert phone.start_login().path == "/auth/authorize", "the phone's SSO session ended too"
    assert shows_portal(someone_else), "another customer keeps theirs"
