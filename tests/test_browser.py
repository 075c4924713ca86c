"""The customer guide in a real Chromium, through nginx."""

import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from devstack.stack import Stack

from .external_tools import decode_qr, totp_now

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.csp_violations = []  # type: ignore[attr-defined]
    page.on(
        "console",
        lambda message: (
            page.csp_violations.append(message.text)  # type: ignore[attr-defined]
            if "Content Security Policy" in message.text
            else None
        ),
    )
    yield page
    context.close()


def test_first_login_then_logout_and_back_in_without_a_prompt(stack: Stack, page: Page) -> None:
    name = f"web{secrets.token_hex(4)}"
    password = "a long browser password"
    assert stack.ssoctl("user", "add", name, "--password-stdin", input=password + "\n").returncode == 0

    page.goto(stack.gateway_url + "/")
    page.get_by_role("link", name="Login").click()

    page.get_by_label("Username").fill(name)
    page.get_by_role("button", name="Log in").click()

    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Continue").click()

    # The set-up page: the QR code as the phone's camera would see it, read by zbar.
    qr = page.locator("img.qr")
    qr.wait_for()
    uri = decode_qr(qr.screenshot())
    secret = page.locator("#totp-secret").inner_text().strip().replace(" ", "")
    assert uri.startswith(f"otpauth://totp/Orange%20Business:{name}?secret={secret}&")
    assert page.locator("#copy-secret").is_visible(), "the Copy button shows once its script runs"

    page.get_by_label("TOTP code").fill(totp_now(secret))
    page.get_by_role("button", name="Continue").click()

    page.get_by_role("link", name="Continue").click()
    assert page.url == stack.gateway_url + "/portal/"
    assert name in page.locator("main").inner_text()

    page.get_by_role("button", name="Log out").click()
    assert page.url == stack.gateway_url + "/"
    page.get_by_role("link", name="Login").click()
    assert page.url == stack.gateway_url + "/portal/", "the SSO session lets the customer straight back in"
    assert page.csp_violations == []  # type: ignore[attr-defined]
