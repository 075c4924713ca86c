"""axe-core on every page a customer can meet, in English on a desktop and in French on a phone."""

import secrets
from typing import Any

import pytest
from playwright.sync_api import Browser

from devstack.stack import Stack

from .accessibility import assert_accessible
from .browsers import keep_screenshot
from .external_tools import totp_now

pytestmark = pytest.mark.browser

DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}, "locale": "en-GB"}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "locale": "fr-FR",
}
# What each page's button or link says, in each language.
WORDS = {
    "en-GB": {
        "login": "Login",
        "log_in": "Log in",
        "continue": "Continue",
        "code": "6-digit code from your app",
        "username": "Username",
        "password": "Password",
        "log_out": "Log out",
        "everywhere": "Sign out everywhere",
        "security": "Security: two-factor authentication, password and sessions",
        "saved": "I have saved these codes",
        "use_recovery": "Use a recovery code",
        "recovery_code": "Recovery code",
    },
    "fr-FR": {
        "login": "Connexion",
        "log_in": "Se connecter",
        "continue": "Continuer",
        "code": "Code à 6 chiffres de votre application",
        "username": "Nom d'utilisateur",
        "password": "Mot de passe",
        "log_out": "Se déconnecter",
        "everywhere": "Se déconnecter partout",
        "security": "Sécurité : double authentification, mot de passe et sessions",
        "saved": "J'ai enregistré ces codes",
        "use_recovery": "Utiliser un code de secours",
        "recovery_code": "Code de secours",
    },
}


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=["desktop-en", "phone-fr"])
def test_every_page_of_the_guide_passes_axe(stack: Stack, browser: Browser, device: dict[str, Any]) -> None:
    words = WORDS[device["locale"]]
    label = "desktop-en" if device is DESKTOP else "phone-fr"
    name = f"axe{secrets.token_hex(4)}"
    password = "a long accessible password"
    assert stack.ssoctl("user", "add", name, "--password-stdin", input=password + "\n").returncode == 0
    context = browser.new_context(**device)
    page = context.new_page()
    checked: list[str] = []

    def check(step: str) -> None:
        assert_accessible(page)
        keep_screenshot(page, f"{label}-{len(checked):02d}-{step}")
        checked.append(step)

    try:
        page.goto(stack.gateway_url + "/")
        check("landing")
        page.get_by_role("link", name=words["login"]).click()
        check("username")
        page.get_by_label(words["username"]).fill(name)
        page.get_by_role("button", name=words["log_in"]).click()
        check("password")
        page.get_by_label(words["password"]).fill("not the password")
        page.get_by_role("button", name=words["continue"]).click()
        page.get_by_role("alert").wait_for()
        check("password-wrong")
        page.get_by_label(words["password"]).fill(password)
        page.get_by_role("button", name=words["continue"]).click()
        page.locator("img.qr").wait_for()
        check("set-up")
        secret = page.locator("#totp-secret").inner_text()
        page.get_by_label(words["code"]).fill(_wrong(totp_now(secret)))
        page.get_by_role("button", name=words["continue"]).click()
        page.get_by_role("alert").wait_for()
        check("set-up-wrong-code")
        page.get_by_label(words["code"]).fill(totp_now(secret))
        page.get_by_role("button", name=words["continue"]).click()
        page.locator("#recovery-codes").wait_for()
        check("recovery-codes")
        codes = page.locator("#recovery-codes li").all_inner_texts()
        page.get_by_role("button", name=words["continue"]).click()  # not ticked: the browser asks
        page.evaluate("document.getElementById('saved').removeAttribute('required')")
        page.get_by_role("button", name=words["continue"]).click()  # the server asks too
        page.get_by_role("alert").wait_for()
        check("recovery-codes-not-ticked")
        page.get_by_label(words["saved"]).check()
        page.get_by_role("button", name=words["continue"]).click()
        page.locator("#continue").wait_for()
        check("continue")
        page.locator("#continue").click()
        page.wait_for_url("**/portal/")
        check("portal")
        page.get_by_role("link", name=words["security"]).click()
        page.wait_for_url("**/portal/security")
        check("security")
        # The Security page's own Sign out everywhere: the portal's, every device.
        page.get_by_role("button", name=words["everywhere"]).click()
        page.wait_for_url(stack.gateway_url + "/")
        check("signed-out-everywhere")

        # A later sign-in: the code page, right and wrong.
        page.get_by_role("link", name=words["login"]).click()
        page.get_by_label(words["username"]).fill(name)
        page.get_by_role("button", name=words["log_in"]).click()
        page.get_by_label(words["password"]).fill(password)
        page.get_by_role("button", name=words["continue"]).click()
        page.get_by_label(words["code"]).wait_for()
        check("code")
        page.get_by_label(words["code"]).fill(_wrong(totp_now(secret)))
        page.get_by_role("button", name=words["continue"]).click()
        page.get_by_role("alert").wait_for()
        check("code-wrong")
        page.get_by_role("link", name=words["use_recovery"]).click()
        page.get_by_label(words["recovery_code"]).wait_for()
        check("recovery-code")
        page.get_by_label(words["recovery_code"]).fill("2222-2222-2222")
        page.get_by_role("button", name=words["continue"]).click()
        page.get_by_role("alert").wait_for()
        check("recovery-code-wrong")
        page.get_by_label(words["recovery_code"]).fill(codes[0].lower().replace("-", ""))
        page.get_by_role("button", name=words["continue"]).click()
        page.locator("#recovery-codes-left").wait_for()
        check("continue-after-recovery-code")

        # The calm pages: an expired step and a page that does not exist.
        page.goto(stack.gateway_url + "/auth/login")
        check("expired")
        page.goto(stack.gateway_url + "/portal/no-such-page")
        check("not-found")
        page.goto(stack.gateway_url + "/auth/logout")
        check("signed-out")
    finally:
        context.close()
    assert len(checked) == 20


def test_axe_fails_a_page_that_is_not_accessible(browser: Browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        # No language, no title, an image without text, a field without a label.
        page.set_content('<html><body><img src="data:,"><input type="text"></body></html>')
        with pytest.raises(AssertionError, match="image-alt"):
            assert_accessible(page)
    finally:
        context.close()
