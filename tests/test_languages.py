"""English and French through the gateway: Accept-Language, the switch and its cookie, error pages."""

from collections.abc import Callable

import pytest

from devstack.stack import Stack

from .customer import Customer, Page
from .external_tools import decode_qr, totp_now
from .flows import Account, add_user

FRENCH = "fr-FR,fr;q=0.9,en;q=0.5"


@pytest.fixture
def account(stack: Stack) -> Account:
    return add_user(stack)


def _language(page: Page) -> str:
    html = page.soup.find("html")
    assert html is not None
    return str(html.get("lang"))


def _switch_to(customer: Customer, page: Page, language: str) -> Page:
    link = page.soup.find("a", attrs={"hreflang": language})
    assert link is not None, f"no switch to {language} on {page.path}: {page.text[:200]}"
    return customer.get(str(link["href"]))


def test_a_french_browser_signs_in_in_french_from_landing_to_portal(
    customers: Callable[[], Customer], account: Account
) -> None:
    customer = customers()
    customer.http.headers["accept-language"] = FRENCH

    landing = customer.get("/")
    assert _language(landing) == "fr"
    login = landing.soup.find("a", href="/portal/login")
    assert login is not None and login.get_text(strip=True) == "Connexion"

    page = customer.get("/portal/login")
    assert (page.path, _language(page)) == ("/auth/authorize", "fr")
    assert "Nom d'utilisateur" in page.text and "Username" not in page.text
    page = customer.enter_username(page, account.name)
    assert "Saisissez votre mot de passe" in page.text
    wrong = customer.enter_password(page, "not the password")
    assert wrong.status == 401 and "Nom d'utilisateur ou mot de passe incorrect." in wrong.text
    page = customer.enter_password(wrong, account.password)

    assert (page.path, _language(page)) == ("/mfa/", "fr")
    assert "Configurer l'authentification à deux facteurs" in page.text
    secret = page.by_id("totp-secret").replace(" ", "")
    assert secret in decode_qr(page.qr_png())
    wrong_code = customer.enter_setup_code(page, "000000" if totp_now(secret) != "000000" else "111111")
    assert wrong_code.status == 401 and "Ce code n'a pas fonctionné." in wrong_code.text
    page = customer.enter_setup_code(wrong_code, totp_now(secret))

    assert (page.path, _language(page)) == ("/auth/login/complete", "fr")
    assert page.soup.find(id="continue").get_text(strip=True) == "Continuer"
    portal = customer.press_continue(page)
    assert (portal.path, _language(portal)) == ("/portal/", "fr")
    assert f"Bienvenue, {account.name}" in portal.text and "Se déconnecter partout" in portal.text


def test_the_switch_sets_a_cookie_that_outweighs_the_browser(
    customers: Callable[[], Customer], account: Account
) -> None:
    customer = customers()
    customer.http.headers["accept-language"] = "en-GB,en;q=0.9"
    page = customer.start_login()
    assert _language(page) == "en" and "Username" in page.text

    page = _switch_to(customer, page, "fr")
    assert (page.path, _language(page)) == ("/auth/login", "fr")
    assert customer.http.cookies.get("lang") == "fr"
    # The next pages stay French, though the browser still asks for English.
    page = customer.enter_username(page, account.name)
    wrong = customer.enter_password(page, "not the password")
    assert _language(wrong) == "fr"
    # That page answered a form; its switch leads back to the step's own page, in English.
    page = _switch_to(customer, wrong, "en")
    assert (page.status, page.path, _language(page)) == (200, "/auth/login", "en")
    assert "Enter your password" in page.text
    assert customer.http.cookies.get("lang") == "en"


def test_calm_error_pages_speak_the_customers_language(customers: Callable[[], Customer]) -> None:
    customer = customers()
    customer.http.headers["accept-language"] = FRENCH

    expired = customer.get("/auth/login")  # no sign-in under way
    assert 400 <= expired.status < 500 and _language(expired) == "fr"
    assert "Votre connexion a expiré." in expired.text

    missing = customer.get("/mfa/no-such-page")
    assert missing.status == 404 and "Cette page n'existe pas." in missing.text

    refused = customer.get("/auth/login?x=%00")
    assert refused.status == 400 and "Certaines informations envoyées ne sont pas valides." in refused.text


def test_english_stays_the_default(customers: Callable[[], Customer]) -> None:
    customer = customers()
    customer.http.headers["accept-language"] = "de-DE,de;q=0.9"
    landing = customer.get("/")
    assert _language(landing) == "en" and "Login" in landing.text
    assert landing.soup.find("a", attrs={"hreflang": "fr"}) is not None


def test_the_brand_name_is_a_setting(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(SSO_BRAND_NAME="Acme Telecom")
    customer = Customer(stack.gateway_url)
    try:
        for path, language in (("/", "en"), ("/auth/login?lang=fr", "fr")):
            page = customer.get(path)
            assert _language(page) == language
            assert "Acme Telecom" in page.text and "Orange Business" not in page.text
        # In a sentence of the catalogue too, in the customer's language (the switch set French).
        assert "l'authentification unique Acme Telecom." in customer.get("/auth/logout").text
    finally:
        customer.close()
