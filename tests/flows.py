"""The customer guide's steps as the integration tests take them: add a user, sign in, set up."""

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from devstack.stack import Stack

from .customer import Customer, Page
from .external_tools import totp_now

PASSWORD = "correct horse battery"
# How long a portal process may show a session ended where it cannot see it (an admin action
# through ssoctl, auth ending a session): PORTAL_SESSION_CHECK_SECONDS, at most 1 s.
PORTAL_SESSION_CHECK_SECONDS = 1.0


@dataclass
class Account:
    name: str
    password: str = PASSWORD
    secret: str = ""
    # The recovery codes shown at the first set-up.
    recovery_codes: list[str] = field(default_factory=list)


@contextmanager
def customer_pool(gateway_url: str) -> Iterator[Callable[[], Customer]]:
    """Makes customers (each a browser of its own, on its own address) and closes them after."""
    made: list[Customer] = []

    def make() -> Customer:
        made.append(Customer(gateway_url))
        return made[-1]

    try:
        yield make
    finally:
        for customer in made:
            customer.close()


def add_user(stack: Stack, password: str = PASSWORD) -> Account:
    name = f"cust{secrets.token_hex(4)}"
    result = stack.ssoctl("user", "add", name, "--password-stdin", input=password + "\n")
    assert result.returncode == 0, result.stderr
    return Account(name, password)


def portal_refuses_soon(customer: Customer) -> bool:
    """The portal page refuses the browser's session within PORTAL_SESSION_CHECK_SECONDS (and a
    slow request's time), asked again and again meanwhile; tests/test_portal_session_check.py
    holds the bound itself to the strict 1 s."""
    deadline = time.monotonic() + PORTAL_SESSION_CHECK_SECONDS + 1.0
    while customer.get("/portal/").path != "/":
        if time.monotonic() > deadline:
            return False
    return True


def sign_in_to_code_page(customer: Customer, account: Account) -> Page:
    page = customer.start_login()
    page = customer.enter_username(page, account.name)
    assert page.path == "/auth/login"
    page = customer.enter_password(page, account.password)
    assert (page.status, page.path) == (200, "/mfa/"), page.text[:300]
    return page


def first_login(customer: Customer, account: Account) -> Page:
    """Username, password, set-up with a code from oathtool, the recovery codes saved, Continue:
    the portal page."""
    page = sign_in_to_code_page(customer, account)
    account.secret = page.by_id("totp-secret").replace(" ", "")
    page = customer.enter_setup_code(page, totp_now(account.secret))
    assert page.status == 200, page.text[:300]
    account.recovery_codes = customer.recovery_codes
    return customer.press_continue(page)


def wrong_code_for(secret: str) -> str:
    """A code of the right shape that is not the current one (nor the one before or after)."""
    return f"{(int(totp_now(secret, offset_steps=1)) + 123_457) % 1_000_000:06d}"


def wrong_codes(customers: Callable[[], Customer], account: Account, count: int) -> list[int]:
    """`count` wrong codes from a browser unknown to the account: the answers' statuses."""
    attacker = customers()
    page = sign_in_to_code_page(attacker, account)
    wrong = wrong_code_for(account.secret)
    return [attacker.enter_code(page, wrong).status for _ in range(count)]


def mfa_csrf_token(stack: Stack, customer: Customer) -> str:
    """This browser's CSRF token for mfa's forms. mfa keys its tokens with a secret of its own,
    so an attacker gets one only from an mfa page: here, of an account of their own."""
    own = add_user(stack)
    page = sign_in_to_code_page(customer, own)
    return page.form("/mfa/setup")["csrf_token"]


def replace_cookie(customer: Customer, name: str, value: str) -> None:
    """What an attacker does with a copied cookie: puts it into a browser, instead of its own."""
    for cookie in list(customer.http.cookies.jar):
        if cookie.name == name:
            customer.http.cookies.delete(name, domain=cookie.domain, path=cookie.path)
    customer.http.cookies.set(name, value, domain="127.0.0.1", path="/")
