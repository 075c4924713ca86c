"""The Security page at /portal/security through nginx: real services, Postgres and Redis."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from devstack import Stack

from .customer import Customer, Page
from .external_tools import totp_now
from .flows import Account, add_user, first_login, sign_in_to_code_page


def sign_in_again(customer: Customer, account: Account, offset_steps: int = 1) -> Page:
    """A later sign-in, on another device: the code of a step after the one first_login used
    (mfa accepts each step once, and only steps after the last one used)."""
    page = sign_in_to_code_page(customer, account)
    page = customer.enter_code(page, totp_now(account.secret, offset_steps=offset_steps))
    assert page.status == 200, page.text[:300]
    page = customer.press_continue(page)
    assert (page.status, page.path) == (200, "/portal/"), page.text[:300]
    return page


def test_the_security_page_shows_since_when_2fa_is_on(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    customer = customers()
    portal = first_login(customer, account)
    assert portal.link("security-link") == "/portal/security"

    page = customer.get("/portal/security")

    assert (page.status, page.path) == (200, "/portal/security"), page.text[:300]
    assert page.by_id("mfa-state").startswith("On: your authenticator app has been set up since")
    since = page.soup.select_one("#mfa-state time")["datetime"]
    set_up = datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - set_up) < timedelta(minutes=5)
    assert page.form("/portal/logout-everywhere")["csrf_token"]


def test_the_security_page_needs_a_live_portal_session(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    stranger = customers()
    response = stranger.http.get("/portal/security", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/portal/login")

    account = add_user(stack)
    laptop, phone = customers(), customers()
    first_login(laptop, account)
    assert laptop.get("/portal/security").status == 200
    phone_portal = sign_in_again(phone, account)
    # Signed out everywhere from the phone: the laptop's page is refused at its next request.
    phone.submit(phone_portal, "/portal/logout-everywhere")

    response = laptop.http.get("/portal/security", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/portal/login")
