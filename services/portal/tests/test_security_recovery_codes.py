"""The Security page's recovery codes, on fakes: how many are left, new ones after a code, shown
once in the answer, and the download of what the page showed."""

import re

import pytest
from httpx import AsyncClient

from services.contracts.admin import MfaStatus
from services.contracts.mfa import RecoveryCodesRenewed

from .conftest import FakeAuth, csrf_from, sign_in
from .test_security import FakeSecurity, app, fake_security

__all__ = ["app", "fake_security"]  # the Security page's fixtures

CODES = [f"ABCD-EFGH-JK{c}{c}" for c in "23456789AB"]


def shown_codes(page: str) -> list[str]:
    return re.findall(r"<li><code>([^<]+)</code></li>", page)


async def security_page(browser: AsyncClient, fake_auth: FakeAuth) -> str:
    await sign_in(browser, fake_auth)
    page = await browser.get("/portal/security")
    assert page.status_code == 200
    return page.text


@pytest.mark.parametrize(
    ("left", "said", "few"),
    [
        (10, "You have 10 unused recovery codes: each lets you sign in once without your phone.", False),
        (2, "You have 2 unused recovery codes: each lets you sign in once without your phone.", True),
        (1, "You have 1 unused recovery code: each lets you sign in once without your phone.", True),
    ],
)
async def test_the_page_says_how_many_codes_are_left(
    browser: AsyncClient, fake_auth: FakeAuth, fake_security: FakeSecurity, left: int, said: str, few: bool
) -> None:
    fake_security.status = MfaStatus(enrolled=True, recovery_codes_left=left)
    page = await security_page(browser, fake_auth)
    assert said in page
    assert ('id="recovery-codes-few"' in page) is few
    assert '<form method="post" action="/portal/security/recovery-codes">' in page
    assert 'name="code" type="text" inputmode="numeric" autocomplete="one-time-code"' in page
    assert '<label for="recovery-totp">6-digit code from your app</label>' in page


async def test_without_an_authenticator_there_is_nothing_to_renew(
    browser: AsyncClient, fake_auth: FakeAuth, fake_security: FakeSecurity
) -> None:
    fake_security.status = MfaStatus(enrolled=False)
    page = await security_page(browser, fake_auth)
    assert "None yet: they come with your authenticator app, at your next sign-in." in page
    assert 'action="/portal/security/recovery-codes"' not in page


async def test_new_codes_are_shown_once_with_download_and_print(
    browser: AsyncClient, fake_auth: FakeAuth, fake_security: FakeSecurity
) -> None:
    csrf = csrf_from(await security_page(browser, fake_auth))
    shown = await browser.post(
        "/portal/security/recovery-codes",
        data={"csrf_token": csrf, "code": "123 456"},
        headers={"x-real-ip": "198.51.100.7"},
    )
    assert shown.status_code == 200
    assert shown_codes(shown.text) == CODES
    (asked,) = fake_security.renewals
    assert (asked.user_id, asked.username, asked.code, asked.ip) == (
        "user-1",
        "alice",
        "123456",
        "198.51.100.7",
    )
    assert 'action="/portal/security/recovery-codes/download"' in shown.text
    assert '<button type="button" id="print-codes" class="secondary" hidden>Print</button>' in shown.text
    assert 'src="/portal/static/print.js"' in shown.text
    assert 'hreflang="fr"' not in shown.text, "no language switch: its GET would not show the codes"

    fields = re.findall(r'<input type="hidden" name="codes" value="([^"]+)">', shown.text)
    download = await browser.post(
        "/portal/security/recovery-codes/download", data={"csrf_token": csrf, "codes": fields}
    )
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/plain")
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.text.splitlines() == CODES


@pytest.mark.parametrize(
    "codes",
    [
        [],
        CODES[:9],
        [*CODES[:9], "<script>alert(1)</script>"],
        [*CODES[:9], "ABCD-EFGH-JKL0"],
        [*CODES, CODES[0]],
    ],
    ids=["none", "nine", "markup", "not-a-code", "eleven"],
)
async def test_the_download_sends_back_only_a_set_of_codes(
    browser: AsyncClient, fake_auth: FakeAuth, codes: list[str]
) -> None:
    csrf = csrf_from(await security_page(browser, fake_auth))
    refused = await browser.post(
        "/portal/security/recovery-codes/download", data={"csrf_token": csrf, "codes": codes}
    )
    assert 400 <= refused.status_code < 500
    assert refused.headers["content-type"].startswith("text/html")
    assert "<script>alert" not in refused.text


async def test_new_codes_need_the_csrf_token_and_a_session(
    browser: AsyncClient, fake_auth: FakeAuth, fake_security: FakeSecurity
) -> None:
    await security_page(browser, fake_auth)
    forged = await browser.post(
        "/portal/security/recovery-codes", data={"csrf_token": "x" * 64, "code": "123456"}
    )
    assert forged.status_code == 403
    download = await browser.post(
        "/portal/security/recovery-codes/download", data={"csrf_token": "x" * 64, "codes": CODES}
    )
    assert download.status_code == 403
    assert fake_security.renewals == []


@pytest.mark.parametrize(
    ("answer", "status", "said"),
    [
        (
            RecoveryCodesRenewed(outcome="wrong_code"),
            401,
            "That code didn&#39;t work. Enter the code your app shows now.",
        ),
        (RecoveryCodesRenewed(outcome="code_already_used"), 401, "That code has already been used."),
        (
            RecoveryCodesRenewed(outcome="clock_skew", skew_seconds=300),
            401,
            "your phone&#39;s clock seems to be off",
        ),
        (RecoveryCodesRenewed(outcome="not_enrolled"), 400, "Your authenticator app is not set up"),
        (
            RecoveryCodesRenewed(outcome="locked", locked_seconds=600),
            429,
            "Try again in 10 minutes, at <time",
        ),
    ],
    ids=["wrong", "used", "skew", "not-enrolled", "locked"],
)
async def test_a_refused_code_keeps_the_page_with_a_calm_message(
    browser: AsyncClient,
    fake_auth: FakeAuth,
    fake_security: FakeSecurity,
    answer: RecoveryCodesRenewed,
    status: int,
    said: str,
) -> None:
    fake_security.renewed = answer
    csrf = csrf_from(await security_page(browser, fake_auth))
    page = await browser.post("/portal/security/recovery-codes", data={"csrf_token": csrf, "code": "123456"})
    assert page.status_code == status
    assert said in page.text
    assert 'role="alert" id="recovery-error"' in page.text
    assert shown_codes(page.text) == []
    assert ("retry-after" in page.headers) is (answer.outcome == "locked")


async def test_an_empty_code_asks_for_one_without_asking_mfa(
    browser: AsyncClient, fake_auth: FakeAuth, fake_security: FakeSecurity
) -> None:
    csrf = csrf_from(await security_page(browser, fake_auth))
    page = await browser.post("/portal/security/recovery-codes", data={"csrf_token": csrf, "code": "  "})
    assert page.status_code == 400 and "Enter the 6-digit code from your app." in page.text
    assert fake_security.renewals == []
