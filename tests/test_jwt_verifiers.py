"""Every JWT verifier refuses the known forgeries, and accepts the genuine token made the same way.

Tokens are forged with the stack's real private keys (its secrets dir), changing one thing at a
time: the control case signs the same claims untouched and must be accepted, so each refusal is
for the one thing changed. Verifiers: step tokens at auth (GET /auth/login and
/auth/login/complete), step tokens at mfa (GET /mfa/), service tokens at the session service
(its /internal/ API, on its own port), and the id_token check in the portal (a unit test with a
fake token endpoint: the portal gets its id_token server to server).
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from pydantic import SecretStr

from devstack import Stack
from services.common.clock import FrozenClock
from services.common.keys import SigningKey, generate_private_pem
from services.common.service_client import SERVICE_TOKEN_TYPE
from services.portal.app import create_app as create_portal_app
from services.portal.app import open_state
from services.portal.settings import Settings as PortalSettings
from services.portal.tests.conftest import CLIENT_SECRET, ISSUER, PUBLIC_URL, FakeAuth, FakeSessions, sign_in

from .customer import Customer
from .flows import add_user

GENUINE = "genuine"
FORGERIES = (
    "alg none",
    "HS256 keyed with the public key",
    "unknown kid",
    "wrong aud",
    "wrong iss",
    "expired",
    "tampered payload",
)


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign(claims: dict[str, Any], key: SigningKey, typ: str = "JWT") -> str:
    return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, "typ": typ})


@dataclass(frozen=True)
class Forger:
    """Makes the genuine token or one forgery of it, from the claims a real verifier should accept."""

    key: SigningKey
    wrong_aud: str
    wrong_iss: str
    tamper: dict[str, Any]
    typ: str = "JWT"

    def make(self, case: str, claims: dict[str, Any]) -> str:
        now = int(time.time())
        fresh = {**claims, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
        if case == GENUINE:
            return sign(fresh, self.key, self.typ)
        if case == "alg none":
            return f"{b64({'alg': 'none', 'typ': self.typ, 'kid': self.key.kid})}.{b64(fresh)}."
        if case == "HS256 keyed with the public key":
            # The classic confusion: a verifier that takes alg from the token would HMAC-check
            # it with the public key, which anyone can fetch from the JWKS.
            public_pem = self.key.private_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            signing_input = f"{b64({'alg': 'HS256', 'typ': self.typ, 'kid': self.key.kid})}.{b64(fresh)}"
            mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{b64(mac)}"
        if case == "unknown kid":
            kind = "rsa" if self.key.algorithm == "RS256" else "ec"
            return sign(fresh, SigningKey.from_pem(generate_private_pem(kind)), self.typ)
        if case == "wrong aud":
            return sign({**fresh, "aud": self.wrong_aud}, self.key, self.typ)
        if case == "wrong iss":
            return sign({**fresh, "iss": self.wrong_iss}, self.key, self.typ)
        if case == "expired":
            return sign({**fresh, "iat": now - 1200, "exp": now - 600}, self.key, self.typ)
        if case == "tampered payload":
            header, _payload, signature = sign(fresh, self.key, self.typ).split(".")
            return f"{header}.{b64({**fresh, **self.tamper})}.{signature}"
        raise AssertionError(f"unknown case {case}")


def unverified(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def key_file(stack: Stack, variable: str) -> SigningKey:
    return SigningKey.from_file(Path(stack.env[variable]))


# The stack's verifiers


@dataclass(frozen=True)
class RealSteps:
    """The claims of genuine step tokens, taken from a real sign-in through the gateway."""

    browser: str
    username_stage: dict[str, Any]
    otp_stage: dict[str, Any]


@pytest.fixture(scope="module")
def real_steps(stack: Stack) -> Iterator[RealSteps]:
    account = add_user(stack)
    customer = Customer(stack.gateway_url)
    try:
        page = customer.start_login()
        assert page.path == "/auth/authorize"
        username_stage = unverified(customer.http.cookies["login_step"])
        page = customer.enter_password(customer.enter_username(page, account.name), account.password)
        assert page.path == "/mfa/", page.text[:300]
        otp_stage = unverified(customer.http.cookies["login_step"])
        browser = customer.http.cookies["browser"]
    finally:
        customer.close()
    assert username_stage["stage"] == "username" and otp_stage["stage"] == "otp"
    assert username_stage["bnd"] == hashlib.sha256(browser.encode()).hexdigest()
    yield RealSteps(browser, username_stage, otp_stage)


def get_with_step(stack: Stack, path: str, browser: str, token: str) -> httpx.Response:
    return httpx.get(
        f"{stack.gateway_url}{path}",
        headers={"cookie": f"browser={browser}; login_step={token}"},
        follow_redirects=False,
        timeout=30.0,
    )


@pytest.mark.parametrize("case", [GENUINE, *FORGERIES])
def test_auth_login_page_refuses_forged_step_tokens(stack: Stack, real_steps: RealSteps, case: str) -> None:
    forger = Forger(
        key_file(stack, "AUTH_SIGNING_KEY_FILE"),
        wrong_aud="mfa",
        wrong_iss="portal",
        tamper={"stage": "password", "login_name": "someone-else"},
    )
    claims = {key: value for key, value in real_steps.username_stage.items()}
    response = get_with_step(stack, "/auth/login", real_steps.browser, forger.make(case, claims))

    if case == GENUINE:
        assert response.status_code == 200, response.text[:300]
        assert 'name="username"' in response.text
    else:
        assert response.status_code == 400
        assert "Your sign-in has expired" in response.text
        assert 'name="username"' not in response.text and 'name="password"' not in response.text


@pytest.mark.parametrize("case", [GENUINE, *FORGERIES])
def test_auth_login_complete_refuses_forged_step_tokens(
    stack: Stack, real_steps: RealSteps, case: str
) -> None:
    otp = real_steps.otp_stage
    claims = {
        "stage": "complete",
        "bnd": otp["bnd"],
        "authz": otp["authz"],
        "sub": otp["sub"],
        "preferred_username": otp["preferred_username"],
        "amr": ["pwd", "otp"],
        "enrolled": False,
        "iss": "mfa",
        "aud": "auth",
    }
    forger = Forger(
        key_file(stack, "MFA_SIGNING_KEY_FILE"),
        wrong_aud="mfa",
        wrong_iss="portal",
        tamper={"sub": str(uuid.uuid4()), "preferred_username": "someone-else"},
    )
    response = get_with_step(stack, "/auth/login/complete", real_steps.browser, forger.make(case, claims))

    sso_cookies = [value for value in response.headers.get_list("set-cookie") if value.startswith("sso=")]
    if case == GENUINE:
        assert response.status_code == 200, response.text[:300]
        assert "Continue" in response.text
        assert sso_cookies, "the genuine token makes an SSO session"
    else:
        assert response.status_code == 400
        assert "Continue" not in response.text
        assert sso_cookies == []


@pytest.mark.parametrize("case", [GENUINE, *FORGERIES])
def test_mfa_refuses_forged_step_tokens(stack: Stack, real_steps: RealSteps, case: str) -> None:
    forger = Forger(
        key_file(stack, "AUTH_SIGNING_KEY_FILE"),
        wrong_aud="auth",
        wrong_iss="mfa",
        tamper={"sub": str(uuid.uuid4()), "preferred_username": "someone-else"},
    )
    response = get_with_step(
        stack, "/mfa/", real_steps.browser, forger.make(case, dict(real_steps.otp_stage))
    )

    if case == GENUINE:
        assert response.status_code == 200, response.text[:300]
        assert 'name="code"' in response.text
    else:
        assert response.status_code == 400
        assert "Your sign-in has expired" in response.text
        assert 'name="code"' not in response.text


@pytest.mark.parametrize("case", [GENUINE, *FORGERIES])
def test_session_service_refuses_forged_service_tokens(stack: Stack, case: str) -> None:
    forger = Forger(
        key_file(stack, "PORTAL_SIGNING_KEY_FILE"),
        wrong_aud="auth",
        wrong_iss="session",
        tamper={"exp": int(time.time()) + 30 * 86400},
        typ=SERVICE_TOKEN_TYPE,
    )
    token = forger.make(case, {"iss": "portal", "aud": "session"})
    # Straight to the service's port: the gateway never routes /internal/.
    response = httpx.post(
        f"{stack.service_url('session')}/internal/portal-sessions/lookup",
        json={"session_id": secrets.token_urlsafe(32)},
        headers={"authorization": f"Bearer {token}"},
        timeout=30.0,
    )

    if case == GENUINE:
        # Past the token check: there is just no such session.
        assert response.status_code == 404, response.text
    else:
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unauthorized"


# The portal's id_token check (unit level: the id_token comes from auth server to server)


@pytest.fixture
def portal_clock() -> FrozenClock:
    return FrozenClock(time.time())


@pytest.fixture
def fake_auth(portal_clock: FrozenClock) -> FakeAuth:
    # ES256: the alg devstack registers the portal's client with (PORTAL_ID_TOKEN_SIGNED_RESPONSE_ALGS).
    return FakeAuth(SigningKey.from_pem(generate_private_pem("ec")), portal_clock)


@pytest.fixture
def fake_sessions(portal_clock: FrozenClock) -> FakeSessions:
    return FakeSessions(portal_clock)


@pytest.fixture
async def portal_browser(
    tmp_path: Path, portal_clock: FrozenClock, fake_auth: FakeAuth, fake_sessions: FakeSessions
) -> AsyncIterator[httpx.AsyncClient]:
    key_path = tmp_path / "portal.pem"
    key_path.write_bytes(generate_private_pem("ec"))
    settings = PortalSettings(signing_key_file=key_path, client_secret=SecretStr(CLIENT_SECRET))
    app: FastAPI = create_portal_app(
        settings,
        state_opener=partial(
            open_state,
            clock=portal_clock,
            transport=httpx.MockTransport(fake_auth.handle),
            sessions=fake_sessions,
        ),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
            yield client


def id_token_maker(forger: Forger, case: str) -> Callable[[dict[str, Any]], str]:
    def make(claims: dict[str, Any]) -> str:
        return forger.make(case, {**claims, "iss": ISSUER, "aud": "portal"})

    return make


@pytest.mark.parametrize("case", [GENUINE, *FORGERIES])
async def test_portal_refuses_forged_id_tokens(
    portal_browser: httpx.AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions, case: str
) -> None:
    forger = Forger(
        fake_auth.key,
        wrong_aud="another-client",
        wrong_iss="http://127.0.0.1:8080/evil",
        tamper={"sub": "user-2", "preferred_username": "mallory", "sid": "sid-of-someone-else"},
    )
    fake_auth.make_id_token = id_token_maker(forger, case)

    response = await sign_in(portal_browser, fake_auth)

    session_cookies = [v for v in response.headers.get_list("set-cookie") if v.startswith("portal_session=")]
    if case == GENUINE:
        assert response.status_code == 303, response.text[:300]
        assert len(fake_sessions.sessions) == 1 and session_cookies
    else:
        assert response.status_code == 400
        assert "We could not sign you in" in response.text
        assert fake_sessions.sessions == {} and session_cookies == []
