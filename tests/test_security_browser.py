"""The Security page in Chromium: English on a desktop and French on a phone, axe at each step,
without and with a second device, a refused and a done password change, a device signed out."""

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from playwright.sync_api import Browser

from devstack.stack import Stack

from .accessibility import assert_accessible
from .browsers import keep_screenshot
from .customer import Customer
from .external_tools import totp_now
from .flows import Account
from .test_accessibility import DESKTOP, PHONE, WORDS
from .test_security_page import SAFARI_IPHONE, sign_in_again

pytestmark = pytest.mark.browser

PAGE_WORDS = {
    "en-GB": {
        "current": "Current password",
        "new": "New password",
        "again": "New password again",
        "change": "Change password",
        "wrong": "That is not your current password.",
        "changed": "Your password has been changed.",
        "sign_out": "Sign out",
        "signed_out": "That device has been signed out.",
        "this_device": "this device",
    },
    "fr-FR": {
        "current": "Mot de passe actuel",
        "new": "Nouveau mot de passe",
        "again": "Nouveau mot de passe, à nouveau",
        "change": "Changer le mot de passe",
        "wrong": "Ce n'est pas votre mot de passe actuel.",
        "changed": "Votre mot de passe a été modifié.",
        "sign_out": "Se déconnecter",
        "signed_out": "Cet appareil a été déconnecté.",
        "this_device": "cet appareil",
    },
}


@pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=["desktop-en", "phone-fr"])
def test_the_security_page_in_a_browser(
    stack: Stack, browser: Browser, customers: Callable[[], Customer], device: dict[str, Any]
) -> None:
    words, page_words = WORDS[device["locale"]], PAGE_WORDS[device["locale"]]
    label = "security-desktop-en" if device is DESKTOP else "security-phone-fr"
    account = Account(f"sec{secrets.token_hex(4)}", "a long accessible password")
    assert (
        stack.ssoctl(
            "user", "add", account.name, "--password-stdin", input=account.password + "\n"
        ).returncode
        == 0
    )
    context = browser.new_context(**device, timezone_id="Europe/Paris")
    page = context.new_page()
    steps: list[str] = []

    def check(step: str) -> None:
        assert_accessible(page)
        keep_screenshot(page, f"{label}-{len(steps):02d}-{step}")
        steps.append(step)

    try:
        page.goto(stack.gateway_url + "/portal/login")
        page.get_by_label(words["username"]).fill(account.name)
        page.get_by_role("button", name=words["log_in"]).click()
        page.get_by_label(words["password"]).fill(account.password)
        page.get_by_role("button", name=words["continue"]).click()
        account.secret = page.locator("#totp-secret").inner_text().replace(" ", "")
        page.get_by_label(words["code"]).fill(totp_now(account.secret))
        page.get_by_role("button", name=words["continue"]).click()
        # The recovery codes, shown once after the set-up: saved, on to Continue.
        page.get_by_label(words["saved"]).check()
        page.get_by_role("button", name=words["continue"]).click()
        page.locator("#continue").click()
        page.wait_for_url("**/portal/")
        # A second device: an iPhone's Safari, from another address.
        phone = customers()
        phone.http.headers["user-agent"] = SAFARI_IPHONE
        sign_in_again(phone, account)

        page.goto(stack.gateway_url + "/portal/security")
        items = page.locator("#sessions li")
        assert items.count() == 2
        assert page.locator(".this-device").inner_text() == f"({page_words['this_device']})"
        # local-time.js has put the sign-in time in the browser's zone (Paris: UTC+1 in December).
        signed_in = page.locator("#sessions time").first
        utc = datetime.strptime(str(signed_in.get_attribute("datetime")), "%Y-%m-%dT%H:%M:%SZ")
        assert f"{(utc.hour + 1) % 24:02d}:{utc.minute:02d}" in signed_in.inner_text()
        check("two-devices")

        page.get_by_label(page_words["current"], exact=True).fill("not the password at all")
        page.get_by_label(page_words["new"], exact=True).fill("quiet lantern orbit 42")
        page.get_by_label(page_words["again"], exact=True).fill("quiet lantern orbit 42")
        page.get_by_role("button", name=page_words["change"]).click()
        assert page.locator("#password-error").inner_text() == page_words["wrong"]
        check("password-wrong")

        page.get_by_role("button", name=page_words["sign_out"], exact=False).first.click()
        assert page.locator("#notice").inner_text() == page_words["signed_out"]
        assert page.locator("#sessions li").count() == 1
        check("device-signed-out")

        page.get_by_label(page_words["current"], exact=True).fill(account.password)
        page.get_by_label(page_words["new"], exact=True).fill("quiet lantern orbit 42")
        page.get_by_label(page_words["again"], exact=True).fill("quiet lantern orbit 42")
        page.get_by_role("button", name=page_words["change"]).click()
        assert page.locator("#notice").inner_text().startswith(page_words["changed"])
        check("password-changed")
    finally:
        context.close()
    assert len(steps) == 4
