"""Recovery codes in a real Chromium: shown once after the set-up with Download and Print, the
tick, then a sign-in with one; in English and French, on a desktop and on a phone, axe on each page."""

import secrets
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from devstack.stack import Stack

from .accessibility import assert_accessible
from .browsers import keep_screenshot
from .external_tools import totp_now

pytestmark = pytest.mark.browser

DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
WORDS = {
    "en-GB": {
        "login": "Login",
        "log_in": "Log in",
        "username": "Username",
        "password": "Password",
        "code": "6-digit code from your app",
        "continue": "Continue",
        "saved": "I have saved these codes",
        "download": "Download",
        "print": "Print",
        "use_recovery": "Use a recovery code",
        "recovery_code": "Recovery code",
        "wrong": "That recovery code didn't work. Check it and try again.",
        "left": "You signed in with a recovery code. You have 9 recovery codes left.",
        "expired": "Your sign-in has expired.",
        "everywhere": "Sign out everywhere",
        "security": "Security",
        "new_codes": "New recovery codes",
        "done": "Done: back to Security",
        "left_after_renewal": "You have 10 unused recovery codes",
    },
    "fr-FR": {
        "login": "Connexion",
        "log_in": "Se connecter",
        "username": "Nom d'utilisateur",
        "password": "Mot de passe",
        "code": "Code à 6 chiffres de votre application",
        "continue": "Continuer",
        "saved": "J'ai enregistré ces codes",
        "download": "Télécharger",
        "print": "Imprimer",
        "use_recovery": "Utiliser un code de secours",
        "recovery_code": "Code de secours",
        "wrong": "Ce code de secours n'a pas fonctionné. Vérifiez-le et réessayez.",
        "left": "Vous vous êtes connecté avec un code de secours. Il vous reste 9 codes de secours.",
        "expired": "Votre connexion a expiré.",
        "everywhere": "Se déconnecter partout",
        "security": "Sécurité",
        "new_codes": "Nouveaux codes de secours",
        "done": "Terminé : retour à Sécurité",
        "left_after_renewal": "Il vous reste 10 codes de secours",
    },
}


def _sign_in(page: Page, words: dict[str, str], name: str, password: str) -> None:
    page.get_by_role("link", name=words["login"]).click()
    page.get_by_label(words["username"]).fill(name)
    page.get_by_role("button", name=words["log_in"]).click()
    page.get_by_label(words["password"]).fill(password)
    page.get_by_role("button", name=words["continue"]).click()


@pytest.mark.parametrize("locale", ["en-GB", "fr-FR"])
@pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_codes_shown_once_after_the_set_up_then_one_signs_in(
    stack: Stack, browser: Browser, device: dict[str, Any], locale: str, tmp_path: Path
) -> None:
    words = WORDS[locale]
    label = f"recovery-{'phone' if device is PHONE else 'desktop'}-{locale[:2]}"
    name, password = f"rc{secrets.token_hex(4)}", "a long recovery password"
    assert stack.ssoctl("user", "add", name, "--password-stdin", input=password + "\n").returncode == 0
    context = browser.new_context(**device, locale=locale, accept_downloads=True)
    page = context.new_page()
    csp_violations: list[str] = []
    page.on(
        "console", lambda m: csp_violations.append(m.text) if "Content Security Policy" in m.text else None
    )
    try:
        page.goto(stack.gateway_url + "/")
        _sign_in(page, words, name, password)
        secret = page.locator("#totp-secret").inner_text().replace(" ", "")
        page.get_by_label(words["code"]).fill(totp_now(secret))
        page.get_by_role("button", name=words["continue"]).click()

        # The codes, once: ten of them, Download and Print.
        page.locator("#recovery-codes").wait_for()
        assert page.locator("html").get_attribute("lang") == locale[:2]
        codes = [code.strip() for code in page.locator("#recovery-codes li").all_inner_texts()]
        assert len(codes) == len(set(codes)) == 10
        assert_accessible(page)
        keep_screenshot(page, f"{label}-codes")
        with page.expect_download() as download_info:
            page.get_by_role("button", name=words["download"]).click()
        downloaded = tmp_path / "codes.txt"
        download_info.value.save_as(downloaded)
        assert downloaded.read_text().splitlines() == codes
        page.evaluate("window.print = () => { window.printed = true; }")
        page.get_by_role("button", name=words["print"]).click()
        assert page.evaluate("window.printed") is True

        # Continue without the tick: the browser asks for it, nothing is sent.
        page.get_by_role("button", name=words["continue"]).click()
        assert page.locator("#saved").evaluate("box => box.validity.valueMissing") is True
        assert page.url.endswith("/mfa/recovery-codes")
        page.get_by_label(words["saved"]).check()
        page.get_by_role("button", name=words["continue"]).click()
        page.locator("#continue").wait_for()
        page.locator("#continue").click()
        page.wait_for_url("**/portal/")

        # Back to the codes' page: never shown again.
        page.goto(stack.gateway_url + "/mfa/recovery-codes")
        assert page.locator("#recovery-codes").count() == 0
        assert words["expired"] in page.locator("main").inner_text()
        assert not any(code in page.content() for code in codes)

        # A later sign-in without the phone: a recovery code, typed in lower case.
        page.goto(stack.gateway_url + "/portal/")
        page.get_by_role("button", name=words["everywhere"]).click()
        page.wait_for_url(stack.gateway_url + "/")
        _sign_in(page, words, name, password)
        page.get_by_role("link", name=words["use_recovery"]).click()
        page.get_by_label(words["recovery_code"]).wait_for()
        assert_accessible(page)
        keep_screenshot(page, f"{label}-recovery-form")
        page.get_by_label(words["recovery_code"]).fill("2222-2222-2222")
        page.get_by_role("button", name=words["continue"]).click()
        assert page.get_by_role("alert").inner_text() == words["wrong"]
        assert_accessible(page)
        keep_screenshot(page, f"{label}-recovery-wrong")
        page.get_by_label(words["recovery_code"]).fill(codes[4].lower())
        page.get_by_role("button", name=words["continue"]).click()
        page.locator("#recovery-codes-left").wait_for()
        assert page.locator("#recovery-codes-left").inner_text().strip() == words["left"]
        assert_accessible(page)
        keep_screenshot(page, f"{label}-continue")
        page.locator("#continue").click()
        page.wait_for_url("**/portal/")

        # The Security page: new codes after a code from the app, shown once, with Download.
        page.goto(stack.gateway_url + "/portal/security")
        page.locator("#recovery-totp").fill(totp_now(secret, 1))
        page.get_by_role("button", name=words["new_codes"]).click()
        page.locator("#recovery-codes").wait_for()
        renewed = [code.strip() for code in page.locator("#recovery-codes li").all_inner_texts()]
        assert len(set(renewed)) == 10 and not set(renewed) & set(codes)
        assert_accessible(page)
        keep_screenshot(page, f"{label}-new-codes")
        with page.expect_download() as download_info:
            page.get_by_role("button", name=words["download"]).click()
        download_info.value.save_as(downloaded)
        assert downloaded.read_text().splitlines() == renewed
        assert page.get_by_role("button", name=words["print"]).is_visible()
        page.get_by_role("link", name=words["done"]).click()
        assert words["left_after_renewal"] in page.locator("#recovery-codes-left").inner_text()
        assert csp_violations == []
    finally:
        context.close()
