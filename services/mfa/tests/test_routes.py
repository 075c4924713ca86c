"""The /mfa/ pages as a browser and an attacker see them, on fakes instead of Postgres."""

import base64
import hashlib
import hmac
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pyotp
import pytest
from markupsafe import escape

from services.common.clock import FrozenClock
from services.common.keys import SigningKey, derived_secret, generate_private_pem
from services.common.step_tokens import ConsumedStepTokens
from services.common.tokens import PeerKeys, StaticKeys, TokenIssuer, TokenVerifier
from services.common.web import Pages
from services.mfa.app import create_app
from services.mfa.audit import AuditTrail
from services.mfa.enrollment import Enrollment
from services.mfa.login_step import LoginSteps
from services.mfa.recovery_codes import RecoveryCodeHasher, RecoveryCodes, recovery_code_key
from services.mfa.secret_box import SecretBox
from services.mfa.settings import Settings
from services.mfa.state import MfaState
from services.mfa.store import StepRecords
from services.mfa.totp import TotpVerifier

from .fakes import FakeThrottle, InMemoryStore

BROWSER_ID = "b" * 43 + ".from-auth"  # mfa reads the id auth issued, as it comes
BINDING = hashlib.sha256(BROWSER_ID.encode()).hexdigest()
MFA_PEM = generate_private_pem("ec")
# mfa's CSRF tokens are keyed with a secret of mfa's own (derived from its signing key).
CSRF = hmac.new(
    derived_secret(SigningKey.from_pem(MFA_PEM), "csrf"), BROWSER_ID.encode(), hashlib.sha256
).hexdigest()
AUTHZ = {
    "client_id": "portal",
    "redirect_uri": "http://127.0.0.1:8080/portal/callback",
    "state": "st",
    "nonce": "nn",
    "code_challenge": "cc",
    "scope": "openid profile",
}
EXPIRED = "Your sign-in has expired. Please start again from the customer portal."
START_AGAIN = '<a class="button" id="start-again" href="/portal/login">Start again</a>'
# As the page's HTML has it (the apostrophe escaped).
WRONG = str(escape("That code didn't work. Enter the code your app shows now."))


@dataclass
class Harness:
    client: httpx.AsyncClient
    clock: FrozenClock
    store: InMemoryStore
    auth: TokenIssuer
    mfa_key: SigningKey
    throttle: FakeThrottle

    def otp_step(self, **overrides: Any) -> str:
        claims = {
            "stage": "otp",
            "bnd": BINDING,
            "authz": AUTHZ,
            "sub": "user-alice",
            "preferred_username": "alice",
            "account": "alice",
            "amr": ["pwd"],
            **overrides,
        }
        claims = {name: value for name, value in claims.items() if value is not None}
        return self.auth.issue(overrides.pop("aud", "mfa"), 600, claims)

    async def get(self, step: str | None) -> httpx.Response:
        self.set_step(step)
        return await self.client.get("/mfa/")

    async def post(self, path: str, step: str | None, **form: str) -> httpx.Response:
        self.set_step(step)
        return await self.client.post(path, data={"csrf_token": CSRF, **form})

    def set_step(self, step: str | None) -> None:
        self.client.cookies.delete("login_step")
        if step is not None:
            self.client.cookies.set("login_step", step)

    def code(self, secret: str, steps: int = 0) -> str:
        return pyotp.TOTP(secret).at(self.clock.now() + steps * 30)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    clock = FrozenClock()
    store = InMemoryStore()
    throttle = FakeThrottle(max_failures=5)
    auth_key = SigningKey.from_pem(generate_private_pem("ec"))
    key_file = tmp_path / "mfa.pem"
    key_file.write_bytes(MFA_PEM)
    settings = Settings(
        signing_key_file=key_file,
        encryption_key=base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
    )

    @asynccontextmanager
    async def fake_state(
        settings: Settings, pages: Pages, signing_key: SigningKey
    ) -> AsyncIterator[MfaState]:
        verifier = TokenVerifier(
            PeerKeys({"auth": StaticKeys({"keys": [auth_key.public_jwk()]})}), {"auth"}, "mfa", clock=clock
        )
        box = SecretBox(settings.encryption_key_bytes())
        yield MfaState(
            settings,
            pages,
            Enrollment(store, box, TotpVerifier("Orange Business"), clock, throttle),
            LoginSteps(
                TokenIssuer(signing_key, "mfa", clock),
                verifier,
                ConsumedStepTokens(store, clock),
                600,
                store,
                clock,
            ),
            AuditTrail(store, clock),
            RecoveryCodes(
                store,
                RecoveryCodeHasher(recovery_code_key(settings.encryption_key_bytes())),
                box,
                clock,
                throttle,
            ),
        )

    app = create_app(settings, state_opener=fake_state)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.cookies.set("browser", BROWSER_ID)
            yield Harness(
                client, clock, store, TokenIssuer(auth_key, "auth", clock), app.state.signing_key, throttle
            )


def shown_secret(page: httpx.Response) -> str:
    # Shown in groups of four for typing.
    match = re.search(r'id="totp-secret">((?:[A-Z2-7]{4} ){7}[A-Z2-7]{4})<', page.text)
    assert match, "no secret on the page"
    return match.group(1).replace(" ", "")


async def test_setup_page_for_a_user_without_authenticator(harness: Harness) -> None:
    page = await harness.get(harness.otp_step())
    assert page.status_code == 200
    assert '<img class="qr" src="data:image/png;base64,' in page.text
    assert 'alt="QR code' in page.text
    shown_secret(page)
    assert '<button type="button" id="copy-secret"' in page.text and "hidden" in page.text
    assert '<script src="/mfa/static/copy.js"></script>' in page.text
    assert 'action="/mfa/setup"' in page.text
    assert f'name="csrf_token" value="{CSRF}"' in page.text
    assert '<label for="code">6-digit code from your app</label>' in page.text
    assert 'autocomplete="one-time-code"' in page.text and 'pattern="[0-9]{6}"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_the_qr_carries_the_otpauth_uri_of_the_shown_secret(harness: Harness) -> None:
    page = await harness.get(harness.otp_step())
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    assert png.startswith(b"\x89PNG")
    assert shown_secret(page) == shown_secret(await harness.get(harness.otp_step()))


@pytest.mark.parametrize(
    "step",
    [
        None,
        "not-a-jwt",
        "other-browser",
        "wrong-stage",
        "wrong-audience",
        "no-password",
        "expired",
    ],
)
async def test_an_unusable_step_token_gets_the_expired_page(harness: Harness, step: str | None) -> None:
    tokens = {
        "other-browser": harness.otp_step(bnd=hashlib.sha256(b"other").hexdigest()),
        "wrong-stage": harness.otp_step(stage="password"),
        "wrong-audience": harness.otp_step(aud="auth"),
        "no-password": harness.otp_step(amr=[]),
        "expired": harness.otp_step(),
    }
    token = tokens.get(step or "", step)
    if step == "expired":
        harness.clock.advance(700)
    page = await harness.get(token)
    assert page.status_code == 400
    assert EXPIRED in page.text
    assert START_AGAIN in page.text


async def test_a_step_token_signed_by_mfa_itself_is_refused(harness: Harness) -> None:
    forged = TokenIssuer(harness.mfa_key, "auth", harness.clock).issue(
        "mfa",
        600,
        {
            "stage": "otp",
            "bnd": BINDING,
            "authz": AUTHZ,
            "sub": "u",
            "preferred_username": "u",
            "amr": ["pwd"],
        },
    )
    assert (await harness.get(forged)).status_code == 400


async def test_posting_without_the_csrf_token_is_refused(harness: Harness) -> None:
    harness.set_step(harness.otp_step())
    response = await harness.client.post("/mfa/setup", data={"code": "123456"})
    assert response.status_code == 403
    assert harness.store.credentials == {}


async def test_a_wrong_setup_code_shows_the_same_secret_again(harness: Harness) -> None:
    step = harness.otp_step()
    secret = shown_secret(await harness.get(step))
    wrong = f"{(int(harness.code(secret)) + 1) % 1_000_000:06d}"
    page = await harness.post("/mfa/setup", step, code=wrong)
    assert page.status_code == 401
    assert WRONG in page.text
    assert shown_secret(page) == secret
    assert harness.store.credentials == {}


async def test_a_code_for_an_expired_set_up_gets_the_start_again_page(harness: Harness) -> None:
    # The step token outlives the set-up here: the customer reloads the sign-in (a new step
    # token, the same browser) after the QR was shown.
    secret = shown_secret(await harness.get(harness.otp_step()))
    harness.clock.advance(600)
    page = await harness.post("/mfa/setup", harness.otp_step(), code=harness.code(secret))
    assert page.status_code == 400
    assert "Your set-up has expired: the QR code you scanned no longer works." in page.text
    assert START_AGAIN in page.text and "This sign-in has expired" in page.text
    assert harness.store.credentials == {}


async def test_a_right_setup_code_hands_back_to_auth_once_the_codes_are_saved(harness: Harness) -> None:
    step = harness.otp_step()
    secret = shown_secret(await harness.get(step))
    shown = await harness.post("/mfa/setup", step, code=harness.code(secret))
    assert (shown.status_code, shown.headers["location"]) == (303, "/mfa/recovery-codes")
    assert "set-cookie" not in shown.headers, "the otp step goes on only once the codes are saved"
    response = await harness.post("/mfa/recovery-codes/saved", step, saved="yes")
    assert response.status_code == 303
    assert response.headers["location"] == "/auth/login/complete"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("login_step=")
    for attribute in ("HttpOnly", "Max-Age=600", "Path=/", "SameSite=lax"):
        assert attribute in cookie
    assert "Secure" not in cookie  # the default public URL is http
    token = cookie.split(";")[0].removeprefix("login_step=")
    # Signed with mfa's key; expiry is checked by hand, as the test clock is frozen in 2023.
    claims = jwt.decode(
        token,
        harness.mfa_key.private_key.public_key(),
        algorithms=["ES256"],
        audience="auth",
        options={"verify_exp": False},
    )
    assert claims["exp"] - claims["iat"] == 600
    assert claims["iss"] == "mfa"
    assert claims["stage"] == "complete"
    assert claims["bnd"] == BINDING
    assert claims["authz"] == AUTHZ
    assert (claims["sub"], claims["preferred_username"]) == ("user-alice", "alice")
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["enrolled"] is True
    # The set-up code was never counted by auth: the complete step clears no failure counts.
    assert "clear_throttle" not in claims and harness.throttle.calls == []
    assert jwt.get_unverified_header(token)["kid"] == harness.mfa_key.kid


async def test_an_enrolled_user_gets_the_code_page_and_no_setup(harness: Harness) -> None:
    step = harness.otp_step()
    secret = shown_secret(await harness.get(step))
    await harness.post("/mfa/setup", step, code=harness.code(secret))
    harness.clock.advance(30)

    page = await harness.get(harness.otp_step())
    assert page.status_code == 200
    assert 'action="/mfa/verify"' in page.text
    assert "data:image/png" not in page.text and secret not in page.text

    refused = await harness.post("/mfa/setup", harness.otp_step(), code=harness.code(secret))
    assert refused.status_code == 403

    response = await harness.post("/mfa/verify", harness.otp_step(), code=harness.code(secret))
    assert response.status_code == 303
    token = response.headers["set-cookie"].split(";")[0].removeprefix("login_step=")
    assert jwt.decode(token, options={"verify_signature": False})["enrolled"] is False


async def test_a_used_step_token_cannot_be_replayed(harness: Harness) -> None:
    step = harness.otp_step()
    secret = shown_secret(await harness.get(step))
    assert (await harness.post("/mfa/setup", step, code=harness.code(secret))).status_code == 303
    assert (await harness.post("/mfa/recovery-codes/saved", step, saved="yes")).status_code == 303
    harness.clock.advance(30)
    replay = await harness.post("/mfa/verify", step, code=harness.code(secret))
    assert replay.status_code == 400
    assert EXPIRED in replay.text


async def test_verify_wrong_code_and_used_code(harness: Harness) -> None:
    step = harness.otp_step()
    secret = shown_secret(await harness.get(step))
    await harness.post("/mfa/setup", step, code=harness.code(secret))
    wrong = await harness.post(
        "/mfa/verify", harness.otp_step(), code="000000" if harness.code(secret) != "000000" else "111111"
    )
    assert wrong.status_code == 401 and WRONG in wrong.text
    used = await harness.post("/mfa/verify", harness.otp_step(), code=harness.code(secret))
    assert used.status_code == 401 and "already been used" in used.text


async def test_verify_for_a_user_without_authenticator_goes_to_setup(harness: Harness) -> None:
    response = await harness.post("/mfa/verify", harness.otp_step(), code="123456")
    assert response.status_code == 303
    assert response.headers["location"] == "/mfa/"


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"data": {"csrf_token": CSRF, "code": "1" * 5000}},
        {"data": {"csrf_token": "x" * 5000, "code": "123456"}},
        {"content": b"\xff\xfe garbage", "headers": {"content-type": "application/x-www-form-urlencoded"}},
        {"json": {"code": "123456", "csrf_token": CSRF}},
        {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data; boundary=x"}},
    ],
)
async def test_junk_input_gets_a_calm_4xx(harness: Harness, request_kwargs: dict[str, Any]) -> None:
    harness.set_step(harness.otp_step())
    for path in ("/mfa/setup", "/mfa/verify"):
        response = await harness.client.post(path, **request_kwargs)
        assert 400 <= response.status_code < 500, response.text
        assert "Traceback" not in response.text


async def enrolled_secret(harness: Harness) -> str:
    step = harness.otp_step()
    secret = shown_secret(await harness.get(step))
    assert (await harness.post("/mfa/setup", step, code=harness.code(secret))).status_code == 303
    assert (await harness.post("/mfa/recovery-codes/saved", step, saved="yes")).status_code == 303
    harness.clock.advance(30)
    return secret


def wrong_for(harness: Harness, secret: str) -> str:
    return f"{(int(harness.code(secret)) + 1) % 1_000_000:06d}"


async def test_a_locked_account_is_told_how_long_to_wait_after_the_password(harness: Harness) -> None:
    secret = await enrolled_secret(harness)
    wrong = await harness.post("/mfa/verify", harness.otp_step(), code=wrong_for(harness, secret))
    harness.throttle.failures["alice"] = 99
    locked = await harness.post("/mfa/verify", harness.otp_step(), code=harness.code(secret))
    assert (locked.status_code, wrong.status_code) == (429, 401)
    assert locked.headers["retry-after"] == "840"
    until = datetime.fromtimestamp(harness.clock.now() + 840, UTC)
    assert (
        "Too many attempts: sign-in to this account is paused. Try again in 14 minutes, at "
        f'<time datetime="{until:%Y-%m-%dT%H:%M:%S}Z">{until:%H:%M} UTC</time>.'
    ) in locked.text
    assert WRONG not in locked.text
    assert "set-cookie" not in locked.headers
    assert harness.store.outcomes("sign_in.otp") == ["invalid", "locked"]
    # In French, with the plural of the catalogue.
    harness.client.cookies.set("lang", "fr")
    harness.throttle.lock_seconds = 60
    french = await harness.post("/mfa/verify", harness.otp_step(), code=harness.code(secret))
    assert "Réessayez dans 1 minute, à <time" in french.text


async def test_the_throttle_gets_the_account_claim_and_the_gateways_client_address(harness: Harness) -> None:
    secret = await enrolled_secret(harness)
    harness.set_step(harness.otp_step(account="alice-key", device="device-1"))
    response = await harness.client.post(
        "/mfa/verify",
        data={"csrf_token": CSRF, "code": harness.code(secret)},
        headers={"x-real-ip": "198.51.100.4"},
    )
    assert response.status_code == 303
    # auth is not called after the right code: the complete step names whose counts it clears.
    assert harness.throttle.calls == [("begin", "alice-key", "198.51.100.4")]
    token = response.headers["set-cookie"].split(";")[0].removeprefix("login_step=")
    claims = jwt.decode(
        token,
        harness.mfa_key.private_key.public_key(),
        algorithms=["ES256"],
        audience="auth",
        options={"verify_exp": False},
    )
    assert claims["clear_throttle"] == {
        "kind": "otp",
        "account": "alice-key",
        "ip": "198.51.100.4",
        "device": "device-1",
    }
    assert [row.ip for row in harness.store.audit if row.event == "sign_in.otp"] == ["198.51.100.4"]


async def test_verify_without_an_account_claim_checks_no_code(harness: Harness) -> None:
    secret = await enrolled_secret(harness)
    response = await harness.post("/mfa/verify", harness.otp_step(account=None), code=harness.code(secret))
    assert response.status_code == 400 and EXPIRED in response.text
    assert harness.throttle.calls == []


@pytest.mark.parametrize(
    ("steps", "hint"),
    [
        (4, "Your phone's clock seems to be about 2 minutes ahead. Correct it and try again."),
        (-2, "Your phone's clock seems to be about 1 minute behind. Correct it and try again."),
    ],
)
async def test_a_code_from_a_skewed_clock_gets_the_hint_and_does_not_sign_in(
    harness: Harness, steps: int, hint: str
) -> None:
    secret = await enrolled_secret(harness)
    page = await harness.post("/mfa/verify", harness.otp_step(), code=harness.code(secret, steps))
    assert page.status_code == 401
    assert hint.replace("'", "&#39;") in page.text
    assert "set-cookie" not in page.headers
    # The step was not used up: the right code for now still signs in.
    assert (
        await harness.post("/mfa/verify", harness.otp_step(), code=harness.code(secret))
    ).status_code == 303


async def test_a_skewed_set_up_code_keeps_the_set_up_page_with_the_hint(harness: Harness) -> None:
    step = harness.otp_step()
    secret = shown_secret(await harness.get(step))
    page = await harness.post("/mfa/setup", step, code=harness.code(secret, 10))
    assert page.status_code == 401
    assert "about 5 minutes ahead" in page.text
    assert shown_secret(page) == secret
    assert harness.store.credentials == {}


async def test_a_used_step_token_is_refused_before_any_code_is_checked(harness: Harness) -> None:
    secret = await enrolled_secret(harness)
    step = harness.otp_step()
    assert (await harness.post("/mfa/verify", step, code=harness.code(secret))).status_code == 303
    harness.throttle.calls.clear()
    for path in ("/mfa/verify", "/mfa/setup"):
        replay = await harness.post(path, step, code=wrong_for(harness, secret))
        assert replay.status_code == 400 and EXPIRED in replay.text
    assert (await harness.get(step)).status_code == 400
    assert harness.throttle.calls == []
    # Three replays, one audit row: a loop of replays must not fill the audit trail.
    assert harness.store.outcomes("sign_in.otp") == ["ok", "replayed"]


async def test_a_step_consumed_while_its_code_is_checked_signs_in_nothing(harness: Harness) -> None:
    """Another request with another right code consumed the step between this one's read and its
    code: the statement that records the TOTP step finds the step token spent."""
    secret = await enrolled_secret(harness)
    step = harness.otp_step()
    jti = jwt.decode(step, options={"verify_signature": False})["jti"]
    read = harness.store.step_records

    async def read_then_spent(user_id: str, step_jti: str, browser: str, now: datetime) -> StepRecords:
        records = await read(user_id, step_jti, browser, now)
        harness.store.consumed[jti] = now
        return records

    harness.store.step_records = read_then_spent  # type: ignore[method-assign]
    refused = await harness.post("/mfa/verify", step, code=harness.code(secret))
    assert refused.status_code == 400 and EXPIRED in refused.text
    assert "set-cookie" not in refused.headers or "login_step=" not in refused.headers["set-cookie"]
    assert harness.store.outcomes("sign_in.otp")[-1] == "replayed"
