"""The SSO session ends at its absolute lifetime, whatever the customer does meanwhile."""

import time
from collections.abc import Callable

from devstack.stack import Stack

from .customer import Customer
from .flows import add_user, first_login

LIFETIME_SECONDS = 8


def test_after_the_lifetime_login_asks_for_everything_again(make_stack: Callable[..., Stack]) -> None:
    short = make_stack(SESSION_SSO_LIFETIME_SECONDS=str(LIFETIME_SECONDS))
    account = add_user(short)
    customer = Customer(short.gateway_url)
    try:
        started = time.monotonic()
        portal = first_login(customer, account)
        # The SSO session began within first_login (at the Continue page): by now at the latest.
        signed_in = time.monotonic()
        assert portal.path == "/portal/"

        # Use keeps nothing alive: log out of the portal and straight back in, twice.
        for _ in range(2):
            customer.submit(customer.get("/portal/"), "/portal/logout")
            assert customer.start_login().path == "/portal/"
        assert time.monotonic() - started < LIFETIME_SECONDS, "the machine was too slow to test the lifetime"

        time.sleep(LIFETIME_SECONDS + 1 - (time.monotonic() - signed_in))
        # The portal session never outlives the SSO session that made it.
        assert customer.get("/portal/").path == "/"
        page = customer.start_login()
        assert page.path == "/auth/authorize"
        assert page.soup.find("input", attrs={"name": "username"}) is not None
    finally:
        customer.close()
