"""The messages a customer can meet, through nginx, in English and French: an expired sign-in or
set-up (with its Start again button), a locked account, and the gateway's own pages."""

from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
from playwright.sync_api import Browser, Page

from devstack.datastores import run_async
from devstack.stack import Stack

from .accessibility import assert_accessible
from .browsers import keep_screenshot
from .customer import Customer
from .customer import Page as Answer
from .external_tools import totp_now
from .flows import Account, add_user

FRENCH = "fr-FR,fr;q=0.9,en;q=0.5"
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}, "locale": "en-GB"}
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
LANGUAGES = {"en": "en-GB,en;q=0.9", "fr": FRENCH}
WORDS = {
    "en": {
        "expired": "This sign-in has expired",
        "set_up_expired": "Your set-up has expired: the QR code you scanned no longer works.",
        "step_expired": "Your sign-in has expired. Please start again from the customer portal.",
        "start_again": "Start again",
        "username": "Username",
        "log_in": "Log in",
        "password": "Password",
        "continue": "Continue",
        "code": "6-digit code from your app",
        "welcome": "Welcome,",
    },
    "fr": {
        "expired": "Cette connexion a expiré",
        "set_up_expired": "Votre configuration a expiré : le QR code que vous avez scanné ne fonctionne plus.",
        "step_expired": "Votre connexion a expiré. Recommencez depuis le portail client.",
        "start_again": "Recommencer",
        "username": "Nom d'utilisateur",
        "log_in": "Se connecter",
        "password": "Mot de passe",
        "continue": "Continuer",
        "code": "Code à 6 chiffres de votre application",
        "welcome": "Bienvenue,",
    },
}


def expire_set_ups(stack: Stack, username: str) -> None:
    """The set-up's TTL (MFA_ENROLLMENT_TTL_SECONDS) passes at once: its expiry moves to the past,
    as ten minutes of waiting would leave it."""

    async def expire() -> None:
        connection = await asyncpg.connect(stack.database_url)
        try:
            user_id = await connection.fetchval("SELECT id FROM auth.users WHERE username = $1", username)
            updated = await connection.execute(
                "UPDATE mfa.pending_enrollment SET expires_at = now() - interval '1 second' "
                "WHERE user_id = $1",
                str(user_id),
            )
            assert updated != "UPDATE 0", f"no set-up in progress for {username}"
        finally:
            await connection.close()

    run_async(expire())


def _customer(stack: Stack, language: str) -> Customer:
    customer = Customer(stack.gateway_url)
    customer.http.headers["accept-language"] = LANGUAGES[language]
    return customer


@pytest.fixture
def customers(stack: Stack) -> Iterator[Callable[[str], Customer]]:
    made: list[Customer] = []

    def make(language: str) -> Customer:
        made.append(_customer(stack, language))
        return made[-1]

    yield make
    for customer in made:
        customer.close()


def to_code_page(customer: Customer, account: Account) -> Answer:
    """Login on the portal (in any language), username, password: the set-up or code page."""
    page = customer.enter_username(customer.get("/portal/login"), account.name)
    page = customer.enter_password(page, account.password)
    assert (page.status, page.path) == (200, "/mfa/"), page.text[:300]
    return page


def assert_start_again_page(page: Answer, language: str, message: str) -> None:
    words = WORDS[language]
    assert page.status == 400, (page.status, page.text[:300])
    html = page.soup.find("html")
    assert html is not None and html.get("lang") == language
    heading = page.soup.find("h1")
    assert heading is not None and heading.get_text(strip=True) == words["expired"]
    assert words[message] in page.text
    button = page.soup.find("a", id="start-again")
    assert button is not None and button.get_text(strip=True) == words["start_again"]
    assert button["href"] == "/portal/login"
    # In the product's layout: its stylesheet and brand header.
    assert page.soup.find("link", rel="stylesheet") is not None
    assert page.soup.find("header", class_="brand") is not None


@pytest.mark.parametrize("language", ["en", "fr"])
def test_an_expired_set_up_says_so_and_start_again_ends_at_the_portal(
    stack: Stack, customers: Callable[[str], Customer], language: str
) -> None:
    customer = customers(language)
    account = add_user(stack)
    page = to_code_page(customer, account)
    secret = page.by_id("totp-secret").replace(" ", "")
    expire_set_ups(stack, account.name)

    expired = customer.enter_setup_code(page, totp_now(secret))
    assert_start_again_page(expired, language, "set_up_expired")

    # Start again: the portal's Login, a fresh sign-in, a new QR, and the portal at the end.
    page = customer.get(str(expired.soup.find("a", id="start-again")["href"]))
    assert page.path == "/auth/login"
    page = customer.enter_password(customer.enter_username(page, account.name), account.password)
    new_secret = page.by_id("totp-secret").replace(" ", "")
    assert new_secret != secret, "an expired set-up's QR is never shown again"
    page = customer.enter_setup_code(page, totp_now(new_secret))
    portal = customer.press_continue(page)
    assert portal.path == "/portal/" and f"{WORDS[language]['welcome']} {account.name}" in portal.text


@pytest.mark.parametrize("language", ["en", "fr"])
def test_a_spent_step_token_on_the_password_and_code_pages_offers_start_again(
    stack: Stack, customers: Callable[[str], Customer], language: str
) -> None:
    account = add_user(stack)
    customer = customers(language)
    password_page = customer.enter_username(customer.get("/portal/login"), account.name)
    code_page = customer.enter_password(password_page, account.password)
    assert code_page.path == "/mfa/"
    # The password form again (Back in the browser): its step token is spent.
    again = customer.enter_password(password_page, account.password)
    assert_start_again_page(again, language, "step_expired")
    # The code page again after its right code (Back, or a reload): spent as well.
    secret = code_page.by_id("totp-secret").replace(" ", "")
    done = customer.enter_setup_code(code_page, totp_now(secret))
    assert done.path == "/auth/login/complete"
    assert_start_again_page(customer.get("/mfa/"), language, "step_expired")
    # And a browser with no sign-in under way at all.
    assert_start_again_page(customers(language).get("/auth/login"), language, "step_expired")


def _open(browser: Browser, device: dict[str, Any], language: str) -> tuple[Any, Page]:
    context = browser.new_context(**{**device, "locale": "fr-FR" if language == "fr" else "en-GB"})
    return context, context.new_page()


def _sign_in_to_set_up(stack: Stack, page: Page, account: Account, words: dict[str, str]) -> str:
    page.get_by_label(words["username"]).fill(account.name)
    page.get_by_role("button", name=words["log_in"]).click()
    page.get_by_label(words["password"]).fill(account.password)
    page.get_by_role("button", name=words["continue"]).click()
    page.locator("img.qr").wait_for()
    return page.locator("#totp-secret").inner_text().strip().replace(" ", "")


@pytest.mark.browser
@pytest.mark.parametrize(
    ("device", "language"),
    [(DESKTOP, "en"), (PHONE, "fr"), (DESKTOP, "fr"), (PHONE, "en")],
    ids=["desktop-en", "phone-fr", "desktop-fr", "phone-en"],
)
def test_in_chromium_the_expired_set_up_button_starts_again_and_ends_at_the_portal(
    stack: Stack, browser: Browser, device: dict[str, Any], language: str
) -> None:
    words = WORDS[language]
    label = f"{'phone' if device is PHONE else 'desktop'}-{language}"
    account = add_user(stack)
    context, page = _open(browser, device, language)
    try:
        page.goto(stack.gateway_url + "/portal/login")
        secret = _sign_in_to_set_up(stack, page, account, words)
        expire_set_ups(stack, account.name)
        page.get_by_label(words["code"]).fill(totp_now(secret))
        page.get_by_role("button", name=words["continue"]).click()

        assert page.locator("h1").inner_text() == words["expired"]
        assert words["set_up_expired"] in page.get_by_role("alert").inner_text()
        assert page.locator("html").get_attribute("lang") == language
        keep_screenshot(page, f"{label}-set-up-expired")
        assert_accessible(page)

        page.get_by_role("link", name=words["start_again"]).click()
        secret = _sign_in_to_set_up(stack, page, account, words)
        page.get_by_label(words["code"]).fill(totp_now(secret))
        page.get_by_role("button", name=words["continue"]).click()
        page.get_by_role("link", name=words["continue"]).click()
        assert page.url == stack.gateway_url + "/portal/"
        assert account.name in page.locator("main").inner_text()
    finally:
        context.close()
