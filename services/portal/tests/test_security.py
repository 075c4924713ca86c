"""The Security page at /portal/security, on fakes: who may see it, and what it shows."""

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from services.common.clock import FrozenClock
from services.common.i18n import current_language
from services.contracts.admin import MfaStatus
from services.contracts.auth import ChangePassword, PasswordChanged, PasswordChangeOutcome
from services.contracts.mfa import RecoveryCodesRenewed, RenewRecoveryCodes
from services.contracts.session import UserSession
from services.portal.app import create_app, open_state
from services.portal.security import device_text, moment
from services.portal.settings import Settings

from .conftest import FakeAuth, FakeSessions, csrf_from, set_cookie_headers, sign_in


@dataclass
class FakeSecurity:
    """mfa, auth and the session service as the Security page reaches them."""

    status: MfaStatus = field(
        default_factory=lambda: MfaStatus(
            enrolled=True, enrolled_since=datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
        )
    )
    asked: list[str] = field(default_factory=list)
    password_outcome: PasswordChangeOutcome = "changed"
    password_changes: list[ChangePassword] = field(default_factory=list)

    async def mfa_status(self, user_id: str) -> MfaStatus:
        self.asked.append(user_id)
        return self.status

    sessions: list[UserSession] = field(
        default_factory=lambda: [
            UserSession(
                sid="sid-1",
                auth_time=1_780_000_000,
                expires_at=1_780_043_200,
                device="Chrome on Windows",
                address="127.0.0.1",
            ),
            UserSession(
                sid="sid-2",
                auth_time=1_780_000_100,
                expires_at=1_780_043_300,
                device="Safari on iPhone",
                address="127.0.0.2",
            ),
        ]
    )
    ended: list[tuple[str, str]] = field(default_factory=list)

    async def change_password(self, request: ChangePassword) -> PasswordChanged:
        self.password_changes.append(request)
        return PasswordChanged(outcome=self.password_outcome)

    async def sessions_of(self, user_id: str) -> list[UserSession]:
        return list(self.sessions)

    async def end_session_of(self, user_id: str, sid: str) -> bool:
        self.ended.append((user_id, sid))
        return True

    renewed: RecoveryCodesRenewed = field(
        default_factory=lambda: RecoveryCodesRenewed(
            outcome="renewed", codes=[f"ABCD-EFGH-JK{c}{c}" for c in "23456789AB"]
        )
    )
    renewals: list[RenewRecoveryCodes] = field(default_factory=list)

    async def renew_recovery_codes(self, request: RenewRecoveryCodes) -> RecoveryCodesRenewed:
        self.renewals.append(request)
        return self.renewed


@pytest.fixture
def fake_security() -> FakeSecurity:
    return FakeSecurity()


@pytest.fixture
async def app(
    settings: Settings,
    clock: FrozenClock,
    fake_auth: FakeAuth,
    fake_sessions: FakeSessions,
    fake_security: FakeSecurity,
) -> AsyncIterator[FastAPI]:
    application = create_app(
        settings,
        state_opener=partial(
            open_state,
            clock=clock,
            transport=httpx.MockTransport(fake_auth.handle),
            sessions=fake_sessions,
            security=fake_security,
        ),
    )
    async with application.router.lifespan_context(application):
        yield application


async def test_the_portal_links_to_the_security_page(browser: AsyncClient, fake_auth: FakeAuth) -> None:
    await sign_in(browser, fake_auth)

    page = await browser.get("/portal/")

    assert 'href="/portal/security"' in page.text


async def test_without_a_session_the_security_page_sends_to_login(browser: AsyncClient) -> None:
    response = await browser.get("/portal/security")

    assert response.status_code == 303
    assert response.headers["location"] == "/portal/login"


async def test_a_session_ended_elsewhere_is_refused_and_its_cookie_dropped(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions, fake_security: FakeSecurity
) -> None:
    await sign_in(browser, fake_auth)
    fake_sessions.live_sids.clear()

    response = await browser.get("/portal/security")

    assert (response.status_code, response.headers["location"]) == (303, "/portal/login")
    (cleared,) = set_cookie_headers(response, "portal_session")
    assert "max-age=0" in cleared.lower()
    assert fake_security.asked == []


async def test_the_page_shows_since_when_2fa_is_on_for_the_sessions_user(
    browser: AsyncClient, fake_auth: FakeAuth, fake_security: FakeSecurity
) -> None:
    await sign_in(browser, fake_auth)

    page = await browser.get("/portal/security")

    assert page.status_code == 200
    assert fake_security.asked == ["user-1"]
    assert '<time datetime="2026-03-04T05:06:00Z" data-with-date>4 March 2026, 05:06 UTC</time>' in page.text
    assert "On: your authenticator app has been set up since" in page.text
    assert 'src="/portal/static/local-time.js"' in page.text
    assert '<form method="post" action="/portal/logout-everywhere">' in page.text


async def test_the_page_is_read_again_on_every_request(
    browser: AsyncClient, fake_auth: FakeAuth, fake_security: FakeSecurity
) -> None:
    await sign_in(browser, fake_auth)
    await browser.get("/portal/security")
    fake_security.status = MfaStatus(enrolled=False)

    page = await browser.get("/portal/security")

    assert "Not set up: your next sign-in shows the set-up page." in page.text
    assert fake_security.asked == ["user-1", "user-1"]


async def test_the_page_speaks_french(browser: AsyncClient, fake_auth: FakeAuth) -> None:
    await sign_in(browser, fake_auth)

    page = await browser.get("/portal/security", headers={"accept-language": "fr-FR,fr;q=0.9"})

    assert '<html lang="fr">' in page.text
    assert "4 mars 2026, 05:06 UTC" in page.text
    assert "Sécurité" in page.text


def test_a_moment_is_utc_in_the_customers_language() -> None:
    assert moment(1_780_000_000, "en") == moment(datetime(2026, 5, 28, 20, 26, 40, tzinfo=UTC), "en")
    assert moment(1_780_000_000, "en").iso == "2026-05-28T20:26:40Z"
    assert moment(1_780_000_000, "fr").text == "28 mai 2026, 20:26 UTC"


async def post_password(
    browser: AsyncClient, current: str, new: str, again: str | None = None, csrf: str | None = None
) -> httpx.Response:
    page = await browser.get("/portal/security")
    return await browser.post(
        "/portal/security/password",
        data={
            "csrf_token": csrf_from(page.text) if csrf is None else csrf,
            "current_password": current,
            "new_password": new,
            "new_password_again": new if again is None else again,
        },
    )


async def test_the_password_form_has_its_autocomplete_tokens(
    browser: AsyncClient, fake_auth: FakeAuth
) -> None:
    await sign_in(browser, fake_auth)

    page = (await browser.get("/portal/security")).text

    assert '<form method="post" action="/portal/security/password">' in page
    assert 'name="current_password" type="password" autocomplete="current-password"' in page
    assert page.count('type="password" autocomplete="new-password"') == 2
    assert 'autocomplete="username"' in page


async def test_a_password_change_goes_to_auth_for_this_sessions_user_and_device(
    browser: AsyncClient, fake_auth: FakeAuth, fake_security: FakeSecurity
) -> None:
    await sign_in(browser, fake_auth)

    response = await post_password(browser, "the old one", "a brand new passphrase")

    assert (response.status_code, response.headers["location"]) == (303, "/portal/security")
    (request,) = fake_security.password_changes
    assert (request.user_id, request.keep_sid) == ("user-1", "sid-1")
    assert (request.current_password, request.new_password) == ("the old one", "a brand new passphrase")
    page = await browser.get("/portal/security")
    assert "Your password has been changed. Your other devices have been signed out" in page.text
    # Said once: the notice's cookie is gone after.
    assert "Your password has been changed" not in (await browser.get("/portal/security")).text


@pytest.mark.parametrize(
    ("outcome", "status_code", "message"),
    [
        ("wrong_current", 401, "That is not your current password."),
        ("locked", 429, "Too many wrong passwords"),
        ("same_as_current", 400, "The new password is your current one."),
        ("too_short", 400, "A password needs at least 12 characters."),
        ("too_long", 400, "A password can have at most 1024 characters."),
        ("contains_username", 400, "The new password must not contain your username."),
        ("common", 400, "That password is too common or too easy to guess."),
    ],
)
async def test_each_refusal_of_auth_has_its_calm_message(
    browser: AsyncClient,
    fake_auth: FakeAuth,
    fake_security: FakeSecurity,
    outcome: PasswordChangeOutcome,
    status_code: int,
    message: str,
) -> None:
    await sign_in(browser, fake_auth)
    fake_security.password_outcome = outcome

    response = await post_password(browser, "the old one", "a brand new passphrase")

    assert response.status_code == status_code
    assert 'role="alert" id="password-error">' + message in response.text
    assert "the old one" not in response.text and "a brand new passphrase" not in response.text


async def test_two_different_new_passwords_are_refused_before_auth_is_asked(
    browser: AsyncClient, fake_auth: FakeAuth, fake_security: FakeSecurity
) -> None:
    await sign_in(browser, fake_auth)

    response = await post_password(
        browser, "the old one", "a brand new passphrase", again="a brand new passphrasf"
    )

    assert response.status_code == 400
    assert "The two new passwords are not the same." in response.text
    assert fake_security.password_changes == []


async def test_a_password_change_needs_the_csrf_token_and_a_live_session(
    browser: AsyncClient, fake_auth: FakeAuth, fake_security: FakeSecurity
) -> None:
    await sign_in(browser, fake_auth)
    csrf = csrf_from((await browser.get("/portal/security")).text)
    assert (await post_password(browser, "a", "b", csrf="wrong")).status_code == 403
    browser.cookies.delete("portal_session")

    response = await browser.post(
        "/portal/security/password",
        data={"csrf_token": csrf, "current_password": "a", "new_password": "b", "new_password_again": "b"},
    )

    assert (response.status_code, response.headers["location"]) == (303, "/portal/login")
    assert fake_security.password_changes == []


async def test_the_sessions_show_no_sid_and_only_other_devices_can_be_signed_out(
    browser: AsyncClient, fake_auth: FakeAuth, fake_security: FakeSecurity
) -> None:
    await sign_in(browser, fake_auth)

    page = (await browser.get("/portal/security")).text

    assert 'Chrome on Windows</strong> <span class="this-device">(this device)</span>' in page
    assert "Safari on iPhone" in page and "127.0.0.2" in page
    assert "sid-1" not in page and "sid-2" not in page
    assert page.count('action="/portal/security/sessions/end"') == 1


async def test_a_handle_that_is_not_of_this_customers_sessions_ends_nothing(
    browser: AsyncClient, fake_auth: FakeAuth, fake_security: FakeSecurity
) -> None:
    await sign_in(browser, fake_auth)
    page = (await browser.get("/portal/security")).text
    handle = re.search(r'name="session" value="([0-9a-f]+)"', page)
    assert handle is not None

    forged = await browser.post(
        "/portal/security/sessions/end", data={"csrf_token": csrf_from(page), "session": "0" * 32}
    )
    assert forged.status_code == 400 and "That session has already ended." in forged.text
    assert fake_security.ended == []

    done = await browser.post(
        "/portal/security/sessions/end", data={"csrf_token": csrf_from(page), "session": handle.group(1)}
    )
    assert (done.status_code, done.headers["location"]) == (303, "/portal/security")
    assert fake_security.ended == [("user-1", "sid-2")]


def test_a_device_label_is_said_in_the_customers_language() -> None:
    token = current_language.set("fr")
    try:
        assert device_text("Safari on iPhone") == "Safari sur iPhone"
        assert device_text("Android device") == "Appareil Android"
        assert device_text("Unknown device") == "Appareil inconnu"
        assert device_text("") == "Appareil inconnu"
    finally:
        current_language.reset(token)
    assert device_text("Chrome on Windows") == "Chrome on Windows"


async def test_signing_out_a_device_needs_the_csrf_token_a_live_session_and_another_device(
    app: FastAPI, browser: AsyncClient, fake_auth: FakeAuth, fake_security: FakeSecurity
) -> None:
    await sign_in(browser, fake_auth)
    page = (await browser.get("/portal/security")).text
    other = re.search(r'name="session" value="([0-9a-f]+)"', page)
    assert other is not None
    # This device's own handle, which the page never offers (this device leaves by Log out or
    # Sign out everywhere).
    handles = app.state.service.session_handles
    this_device = handles.handle("sid-1")
    assert handles.handle("sid-2") == other.group(1) and this_device != other.group(1)

    own = await browser.post(
        "/portal/security/sessions/end", data={"csrf_token": csrf_from(page), "session": this_device}
    )
    assert own.status_code == 400 and "That session has already ended." in own.text
    no_csrf = await browser.post(
        "/portal/security/sessions/end", data={"csrf_token": "wrong", "session": other.group(1)}
    )
    assert no_csrf.status_code == 403
    browser.cookies.delete("portal_session")
    signed_out = await browser.post(
        "/portal/security/sessions/end", data={"csrf_token": csrf_from(page), "session": other.group(1)}
    )
    assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/portal/login")
    assert fake_security.ended == []
