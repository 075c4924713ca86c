"""The sign-in steps hold together, through nginx: none can be skipped, replayed or moved.

An attacker here has what a browser has: its own cookies, a copied `login_step` cookie, a
stolen password. The step tokens are bound to one browser and good for one success each.
"""

import hashlib
import hmac
from collections.abc import Callable

import jwt
import pyotp
import pytest

from devstack.stack import Stack

from .customer import Customer, Page
from .external_tools import totp_now
from .flows import Account, add_user, mfa_csrf_token, replace_cookie, sign_in_to_code_page

EXPIRED = "Your sign-in has expired. Please start again from the customer portal."
STEP_COOKIE = "login_step"


@pytest.fixture
def enrolled(stack: Stack, customers: Callable[[], Customer]) -> Account:
    account = add_user(stack)
    customer = customers()
    page = sign_in_to_code_page(customer, account)
    account.secret = page.by_id("totp-secret")
    page = customer.enter_setup_code(page, totp_now(account.secret))
    assert page.path == "/auth/login/complete", page.text[:300]
    return account


def step_cookie(customer: Customer) -> str:
    values = [cookie.value for cookie in customer.http.cookies.jar if cookie.name == STEP_COOKIE]
    assert len(values) == 1, f"expected one {STEP_COOKIE} cookie, found {len(values)}"
    return str(values[0])


def put_step_cookie(customer: Customer, value: str) -> None:
    """What an attacker does with a copied cookie: puts it into their own browser."""
    for cookie in list(customer.http.cookies.jar):
        if cookie.name == STEP_COOKIE:
            customer.http.cookies.delete(STEP_COOKIE, domain=cookie.domain, path=cookie.path)
    customer.http.cookies.set(STEP_COOKIE, value, domain="127.0.0.1", path="/")
    assert step_cookie(customer) == value


def csrf_of(customer: Customer) -> str:
    """This browser's own CSRF token, from any form it is shown."""
    page = customer.start_login()
    return page.form("/auth/login/username")["csrf_token"]


def assert_expired(page: Page) -> None:
    assert page.status == 400, (page.status, page.text[:300])
    assert EXPIRED in page.text


def assert_not_signed_in(customer: Customer) -> None:
    assert "sso" not in customer.cookie_names()
    assert customer.get("/portal/").path == "/"


# Skipping a step


def test_no_code_page_and_no_code_check_without_the_password_step(
    stack: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    customer = customers()
    csrf = mfa_csrf_token(stack, customer)
    customer.enter_username(customer.start_login(), enrolled.name)
    assert_expired(customer.get("/mfa/"))
    for action in ("/mfa/verify", "/mfa/setup"):
        response = customer.http.post(action, data={"csrf_token": csrf, "code": totp_now(enrolled.secret, 1)})
        assert_expired(Page(response))
    assert_not_signed_in(customer)


def test_the_continue_page_needs_the_code_step(
    stack: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    customer = customers()
    sign_in_to_code_page(customer, enrolled)
    # The cookie holds the otp step (for mfa): auth must not take it for a finished sign-in.
    page = customer.get("/auth/login/complete")
    assert page.status == 400, (page.status, page.text[:300])
    assert page.soup.find(id="continue") is None
    assert_not_signed_in(customer)


# Replaying a step after it succeeded


def test_the_password_step_cannot_be_replayed(
    stack: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    customer = customers()
    page = customer.enter_username(customer.start_login(), enrolled.name)
    copied = step_cookie(customer)
    assert customer.enter_password(page, enrolled.password).path == "/mfa/"

    put_step_cookie(customer, copied)
    replay = customer.submit(page, "/auth/login/password", password=enrolled.password)
    assert replay.status == 400, (replay.status, replay.text[:300])
    assert replay.path != "/mfa/"


def test_the_code_step_cannot_be_replayed(
    stack: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    customer = customers()
    page = sign_in_to_code_page(customer, enrolled)
    copied, browser = step_cookie(customer), customer.http.cookies["browser"]
    assert customer.enter_code(page, totp_now(enrolled.secret, 1)).path == "/auth/login/complete"

    # The browser's id is new after the sign-in: a replay brings back the old one too.
    replace_cookie(customer, "browser", browser)
    put_step_cookie(customer, copied)
    assert_expired(customer.get("/mfa/"))
    # Refused before the code is looked at: a 400, not a wrong code's 401.
    replay = customer.enter_code(page, "000000" if totp_now(enrolled.secret) != "000000" else "111111")
    assert_expired(replay)


def test_the_continue_step_cannot_be_replayed(
    stack: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    customer = customers()
    page = sign_in_to_code_page(customer, enrolled)
    done = customer.http.post(
        "/mfa/verify",
        data={**page.form("/mfa/verify"), "code": totp_now(enrolled.secret, 1)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    copied = step_cookie(customer)
    assert customer.get("/auth/login/complete").soup.find(id="continue") is not None

    put_step_cookie(customer, copied)
    replay = customer.get("/auth/login/complete")
    assert replay.status == 400, (replay.status, replay.text[:300])
    assert replay.soup.find(id="continue") is None


# Moving a step to another browser


def test_a_copied_code_step_is_useless_in_another_browser(
    stack: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    victim, attacker = customers(), customers()
    page = sign_in_to_code_page(victim, enrolled)
    csrf = mfa_csrf_token(stack, attacker)
    put_step_cookie(attacker, step_cookie(victim))

    assert_expired(attacker.get("/mfa/"))
    stolen = attacker.http.post(
        "/mfa/verify", data={"csrf_token": csrf, "code": totp_now(enrolled.secret, 1)}
    )
    assert_expired(Page(stolen))
    assert_not_signed_in(attacker)

    # Refused for the browser, not broken: the customer's own browser still signs in with it.
    assert victim.enter_code(page, totp_now(enrolled.secret, 1)).path == "/auth/login/complete"


def test_a_copied_continue_step_is_useless_in_another_browser(
    stack: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    victim, attacker = customers(), customers()
    page = sign_in_to_code_page(victim, enrolled)
    done = victim.http.post(
        "/mfa/verify",
        data={**page.form("/mfa/verify"), "code": totp_now(enrolled.secret, 1)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    csrf_of(attacker)  # the attacker's browser has its own browser cookie
    put_step_cookie(attacker, step_cookie(victim))

    stolen = attacker.get("/auth/login/complete")
    assert stolen.status == 400, (stolen.status, stolen.text[:300])
    assert_not_signed_in(attacker)
    assert victim.get("/auth/login/complete").soup.find(id="continue") is not None


# No second authenticator


def test_an_enrolled_user_never_reaches_the_set_up_page(
    stack: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    attacker = customers()  # has the password, not the phone
    page = sign_in_to_code_page(attacker, enrolled)
    assert page.soup.find("form", action="/mfa/verify") is not None
    assert page.soup.find("form", action="/mfa/setup") is None
    assert page.soup.find(id="totp-secret") is None and page.soup.find("img") is None
    assert enrolled.secret not in page.response.text

    csrf = page.form("/mfa/verify")["csrf_token"]
    own_secret = pyotp.random_base32(32)
    for code in (pyotp.TOTP(own_secret).now(), totp_now(enrolled.secret, 1)):
        refused = attacker.http.post("/mfa/setup", data={"csrf_token": csrf, "code": code})
        assert refused.status_code == 403, (refused.status_code, refused.text[:300])
        assert "already set up" in refused.text
    assert_not_signed_in(attacker)

    # The customer's own authenticator is still the one: the next sign-in asks for its code.
    customer = customers()
    page = sign_in_to_code_page(customer, enrolled)
    assert page.soup.find(id="totp-secret") is None
    assert customer.enter_code(page, totp_now(enrolled.secret, 1)).path == "/auth/login/complete"


def browser_ids(customer: Customer) -> list[str]:
    return [str(cookie.value) for cookie in customer.http.cookies.jar if cookie.name == "browser"]


def test_a_planted_browser_id_is_replaced_before_a_sign_in_is_bound_to_it(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    """Whoever plants a browser id they know in someone's browser must not know what that
    browser's sign-in is bound to, nor be able to make its CSRF tokens."""
    customer = customers()
    planted = "A" * 43
    customer.http.cookies.set("browser", planted, domain="127.0.0.1", path="/")
    page = customer.start_login()
    assert page.path == "/auth/authorize"
    (issued,) = browser_ids(customer)
    assert issued != planted
    claims = jwt.decode(step_cookie(customer), options={"verify_signature": False})
    assert claims["bnd"] == hashlib.sha256(issued.encode()).hexdigest()


def test_a_csrf_token_cannot_be_made_from_the_browser_id(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    customer = customers()
    page = customer.start_login()
    (browser,) = browser_ids(customer)
    made_up = hmac.new(browser.encode(), b"csrf", hashlib.sha256).hexdigest()
    assert made_up != page.form("/auth/login/username")["csrf_token"]
    refused = customer.submit(page, "/auth/login/username", username="someone", csrf_token=made_up)
    assert refused.status == 403


def test_the_browser_id_is_new_after_sign_in(
    stack: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    customer = customers()
    page = sign_in_to_code_page(customer, enrolled)
    (before,) = browser_ids(customer)
    page = customer.enter_code(page, totp_now(enrolled.secret, 1))
    assert page.path == "/auth/login/complete"
    (after,) = browser_ids(customer)
    assert after != before
    assert customer.press_continue(page).path == "/portal/", "the rest of the way works with the new id"
