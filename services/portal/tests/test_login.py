"""Sign-in through auth: what a browser, or someone forging its way back, would see."""

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from httpx import AsyncClient

from services.common.clock import FrozenClock
from services.common.keys import SigningKey, b64url, generate_private_pem
from services.common.tests.jwt_decodes import count_decodes
from services.portal.app import create_app, open_state
from services.portal.settings import Settings

from .conftest import (
    ISSUER,
    PUBLIC_URL,
    FakeAuth,
    FakeSessions,
    s256,
    set_cookie_headers,
    sign_in,
    start_login,
)

SORRY = "We could not sign you in. Please try again."


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


async def test_login_sends_the_browser_to_authorize_with_pkce(browser: AsyncClient) -> None:
    location = await start_login(browser)

    assert location.startswith(f"{ISSUER}/authorize?")
    assert "scope=openid%20profile" in location
    query = query_of(location)
    assert {name: query[name] for name in ("response_type", "client_id", "redirect_uri", "scope")} == {
        "response_type": "code",
        "client_id": "portal",
        "redirect_uri": f"{PUBLIC_URL}/portal/callback",
        "scope": "openid profile",
    }
    assert query["code_challenge_method"] == "S256"
    transaction = jwt.decode(browser.cookies["portal_login"], options={"verify_signature": False})
    assert len(transaction["code_verifier"]) >= 43
    assert query["code_challenge"] == s256(transaction["code_verifier"])
    assert query["state"] == transaction["state"] and query["nonce"] == transaction["nonce"]
    assert transaction["aud"] == "portal-login" and transaction["iss"] == "portal"


async def test_login_cookie_is_scoped_and_short_lived(browser: AsyncClient) -> None:
    response = await browser.get("/portal/login")

    (cookie,) = set_cookie_headers(response, "portal_login")
    attributes = cookie.lower()
    assert "path=/portal" in attributes and "httponly" in attributes
    assert "samesite=lax" in attributes and "max-age=600" in attributes


async def test_each_login_gets_fresh_state_nonce_and_verifier(browser: AsyncClient) -> None:
    first, second = query_of(await start_login(browser)), query_of(await start_login(browser))

    for name in ("state", "nonce", "code_challenge"):
        assert first[name] != second[name]


async def test_sign_in_creates_a_portal_session_and_shows_the_portal(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions
) -> None:
    response = await sign_in(browser, fake_auth)

    assert response.status_code == 303
    assert response.headers["location"] == "/portal/"
    (session_cookie,) = set_cookie_headers(response, "portal_session")
    assert "path=/;" in session_cookie.lower() and "httponly" in session_cookie.lower()
    (login_cookie,) = set_cookie_headers(response, "portal_login")
    assert "max-age=0" in login_cookie.lower() and "path=/portal" in login_cookie.lower()
    (session,) = fake_sessions.sessions.values()
    assert (session.user_id, session.username, session.sid) == ("user-1", "alice", "sid-1")
    (token_request,) = fake_auth.token_requests
    assert token_request["form"]["redirect_uri"] == f"{PUBLIC_URL}/portal/callback"
    assert token_request["authorization"].startswith("Basic ")

    page = await browser.get("/portal/")
    assert page.status_code == 200
    assert "Welcome, alice" in page.text


async def test_a_state_that_does_not_match_the_cookie_is_refused(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions
) -> None:
    location = await start_login(browser)
    code = fake_auth.authorize(location)

    response = await browser.get("/portal/callback", params={"code": code, "state": "forged"})

    assert response.status_code == 400
    assert SORRY in response.text
    assert fake_auth.token_requests == []
    assert fake_sessions.sessions == {}
    assert set_cookie_headers(response, "portal_session") == []


async def test_a_callback_without_a_login_in_progress_is_refused(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions
) -> None:
    location = await start_login(browser)
    code = fake_auth.authorize(location)
    browser.cookies.clear()

    response = await browser.get(
        "/portal/callback", params={"code": code, "state": query_of(location)["state"]}
    )

    assert response.status_code == 400
    assert fake_sessions.sessions == {}


async def test_a_login_cookie_signed_by_someone_else_is_refused(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions, clock: FrozenClock
) -> None:
    stranger = SigningKey.from_pem(generate_private_pem("ec"))
    now = int(clock.now())
    forged = jwt.encode(
        {
            "iss": "portal",
            "aud": "portal-login",
            "iat": now,
            "exp": now + 600,
            "jti": "x",
            "state": "s",
            "nonce": "n",
            "code_verifier": "v" * 43,
        },
        stranger.private_key,
        algorithm="ES256",
        headers={"kid": stranger.kid},
    )
    browser.cookies.set("portal_login", forged, path="/portal")

    response = await browser.get("/portal/callback", params={"code": "c", "state": "s"})

    assert response.status_code == 400
    assert fake_auth.token_requests == []


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token whose signature is checked (jwt.decode), in order."""
    return count_decodes(monkeypatch)


async def test_the_login_cookie_signed_here_comes_back_without_a_signature_check(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions, decoded: list[str]
) -> None:
    location = await start_login(browser)
    sealed = browser.cookies["portal_login"]
    code = fake_auth.authorize(location)

    response = await browser.get(
        "/portal/callback", params={"code": code, "state": query_of(location)["state"]}
    )

    assert response.status_code == 303 and len(fake_sessions.sessions) == 1
    assert sealed not in decoded


async def test_a_login_cookie_changed_by_one_character_is_checked_in_full_and_refused(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions, decoded: list[str]
) -> None:
    location = await start_login(browser)
    sealed = browser.cookies["portal_login"]
    head, claims, signature = sealed.split(".")
    changed = ".".join([head, claims, ("A" if signature[0] != "A" else "B") + signature[1:]])
    (login_cookie,) = [cookie for cookie in browser.cookies.jar if cookie.name == "portal_login"]
    login_cookie.value = changed
    code = fake_auth.authorize(location)

    response = await browser.get(
        "/portal/callback", params={"code": code, "state": query_of(location)["state"]}
    )

    assert response.status_code == 400
    assert changed in decoded
    assert fake_auth.token_requests == [] and fake_sessions.sessions == {}


async def test_a_login_left_for_more_than_ten_minutes_is_refused(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions, clock: FrozenClock
) -> None:
    location = await start_login(browser)
    code = fake_auth.authorize(location)
    clock.advance(611)

    response = await browser.get(
        "/portal/callback", params={"code": code, "state": query_of(location)["state"]}
    )

    assert response.status_code == 400
    assert fake_sessions.sessions == {}


async def test_an_error_from_auth_gives_the_calm_page(
    browser: AsyncClient, fake_sessions: FakeSessions
) -> None:
    location = await start_login(browser)

    response = await browser.get(
        "/portal/callback",
        params={"error": "access_denied", "state": query_of(location)["state"]},
    )

    assert response.status_code == 400
    assert SORRY in response.text
    assert "Traceback" not in response.text


async def test_a_code_auth_refuses_gives_the_calm_page(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions
) -> None:
    location = await start_login(browser)
    fake_auth.authorize(location)

    response = await browser.get(
        "/portal/callback", params={"code": "not-a-code", "state": query_of(location)["state"]}
    )

    assert response.status_code == 400
    assert SORRY in response.text
    assert fake_sessions.sessions == {}


def signed(key: SigningKey, **overrides: Any) -> Callable[[dict[str, Any]], str]:
    def make(claims: dict[str, Any]) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": "portal", "iat": now, "exp": now + 300, **claims}
        payload.update(overrides)
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(payload, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid})

    return make


def unsigned(claims: dict[str, Any]) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": "portal", "iat": now, "exp": now + 300, **claims}
    return jwt.encode(payload, "", algorithm="none", headers={"kid": "any"})


BAD_ID_TOKENS: dict[str, Callable[[SigningKey, FrozenClock], Callable[[dict[str, Any]], str]]] = {
    "wrong audience": lambda key, clock: signed(key, aud="someone-else"),
    "wrong issuer": lambda key, clock: signed(key, iss="http://evil.example/auth"),
    "expired": lambda key, clock: signed(key, exp=int(clock.now()) - 60),
    "nonce mismatch": lambda key, clock: signed(key, nonce="not-the-nonce"),
    "no nonce": lambda key, clock: signed(key, nonce=None),
    "no sid": lambda key, clock: signed(key, sid=None),
    "password only": lambda key, clock: signed(key, amr=["pwd"]),
    "no amr": lambda key, clock: signed(key, amr=None),
    "alg none": lambda key, clock: unsigned,
    "another key under auth's kid": lambda key, clock: signed(
        SigningKey(SigningKey.from_pem(generate_private_pem("ec")).private_key, key.kid, "ES256")
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ID_TOKENS))
async def test_a_bad_id_token_is_refused(
    case: str,
    browser: AsyncClient,
    fake_auth: FakeAuth,
    fake_sessions: FakeSessions,
    clock: FrozenClock,
) -> None:
    clock.current = time.time()
    fake_auth.make_id_token = BAD_ID_TOKENS[case](fake_auth.key, clock)

    response = await sign_in(browser, fake_auth)

    assert response.status_code == 400
    assert SORRY in response.text
    assert fake_sessions.sessions == {}
    assert set_cookie_headers(response, "portal_session") == []


async def test_a_good_hand_made_id_token_is_accepted(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions, clock: FrozenClock
) -> None:
    # The same maker as the refused cases, unchanged: proves they fail for their one reason.
    clock.current = time.time()
    fake_auth.make_id_token = signed(fake_auth.key)

    response = await sign_in(browser, fake_auth)

    assert response.status_code == 303
    assert len(fake_sessions.sessions) == 1


def hs256_keyed_with(key: SigningKey) -> Callable[[dict[str, Any]], str]:
    """The classic confusion: HMAC with the public key (anyone can fetch it), under its kid."""

    def make(claims: dict[str, Any]) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": "portal", "iat": now, "exp": now + 300, **claims}
        header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
        public_pem = key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"

    return make


# By default the portal takes an id_token in either asymmetric alg auth signs with, each only
# with the key of auth's JWKS that its kid names and whose type is that alg's: the RSA key for
# RS256 (a portal client registered before ES256), the EC key for ES256.
ACCEPTED_ID_TOKENS: dict[str, Callable[[FakeAuth], Callable[[dict[str, Any]], str]]] = {
    "ES256 by auth's EC key": lambda auth: signed(auth.key),
    "RS256 by auth's published RSA key": lambda auth: signed(auth.also_published[0]),
}

# Refused whatever the settings say: no symmetric alg (nor none: BAD_ID_TOKENS), and no
# signature in one alg under the kid of the other alg's key.
REFUSED_ID_TOKENS: dict[str, Callable[[FakeAuth], Callable[[dict[str, Any]], str]]] = {
    "HS256 keyed with the ES256 key": lambda auth: hs256_keyed_with(auth.key),
    "HS256 keyed with the RSA key": lambda auth: hs256_keyed_with(auth.also_published[0]),
    "RS256 under the ES256 key's kid": lambda auth: signed(
        SigningKey(auth.also_published[0].private_key, auth.key.kid, "RS256")
    ),
    "ES256 under the RSA key's kid": lambda auth: signed(
        SigningKey(auth.key.private_key, auth.also_published[0].kid, "ES256")
    ),
    "another RSA key under auth's RSA kid": lambda auth: signed(
        SigningKey(
            SigningKey.from_pem(generate_private_pem("rsa")).private_key, auth.also_published[0].kid, "RS256"
        )
    ),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED_ID_TOKENS))
async def test_an_id_token_in_either_asymmetric_alg_is_accepted_by_default(
    case: str, browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions, clock: FrozenClock
) -> None:
    # An upgrade needs no step: the portal client registered before is RS256, a new one ES256.
    clock.current = time.time()
    assert isinstance(fake_auth.also_published[0].private_key, rsa.RSAPrivateKey)
    fake_auth.make_id_token = ACCEPTED_ID_TOKENS[case](fake_auth)

    response = await sign_in(browser, fake_auth)

    assert response.status_code == 303
    assert len(fake_sessions.sessions) == 1


@pytest.mark.parametrize("case", sorted(REFUSED_ID_TOKENS))
async def test_an_id_token_in_a_symmetric_alg_or_the_other_keys_alg_is_refused(
    case: str, browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions, clock: FrozenClock
) -> None:
    clock.current = time.time()
    assert isinstance(fake_auth.also_published[0].private_key, rsa.RSAPrivateKey)
    fake_auth.make_id_token = REFUSED_ID_TOKENS[case](fake_auth)

    response = await sign_in(browser, fake_auth)

    assert response.status_code == 400
    assert SORRY in response.text
    assert fake_sessions.sessions == {}


@asynccontextmanager
async def portal_with(
    settings: Settings, clock: FrozenClock, fake_auth: FakeAuth, fake_sessions: FakeSessions
) -> AsyncIterator[AsyncClient]:
    """A browser at a portal started with these settings instead of the fixture's."""
    application = create_app(
        settings,
        state_opener=partial(
            open_state, clock=clock, transport=httpx.MockTransport(fake_auth.handle), sessions=fake_sessions
        ),
    )
    async with (
        application.router.lifespan_context(application),
        AsyncClient(transport=httpx.ASGITransport(app=application), base_url=PUBLIC_URL) as browser,
    ):
        browser.cookies.set("browser", "b" * 43 + ".from-auth")
        yield browser


async def test_a_portal_narrowed_to_es256_refuses_rs256_and_takes_es256(
    settings: Settings, clock: FrozenClock, fake_auth: FakeAuth, fake_sessions: FakeSessions
) -> None:
    # Once its client is registered ES256 (docs/operations.md), an operator may narrow the list.
    clock.current = time.time()
    narrowed = settings.model_copy(update={"id_token_signed_response_algs": ("ES256",)})
    async with portal_with(narrowed, clock, fake_auth, fake_sessions) as browser:
        fake_auth.make_id_token = signed(fake_auth.also_published[0])
        refused = await sign_in(browser, fake_auth)
        fake_auth.make_id_token = signed(fake_auth.key)
        accepted = await sign_in(browser, fake_auth)

    assert refused.status_code == 400
    assert SORRY in refused.text
    assert accepted.status_code == 303
    assert len(fake_sessions.sessions) == 1


def test_the_accepted_algs_are_read_as_a_json_list_of_asymmetric_ones(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.id_token_signed_response_algs == ("ES256", "RS256")
    monkeypatch.setenv("PORTAL_ID_TOKEN_SIGNED_RESPONSE_ALGS", '["ES256"]')
    assert Settings(signing_key_file=settings.signing_key_file).id_token_signed_response_algs == ("ES256",)
    for refused in ('["HS256"]', '["none"]', '["ES256", "HS256"]', "[]", "ES256"):
        monkeypatch.setenv("PORTAL_ID_TOKEN_SIGNED_RESPONSE_ALGS", refused)
        with pytest.raises(ValueError):  # pydantic's ValidationError or SettingsError: no start
            Settings(signing_key_file=settings.signing_key_file)


async def test_an_expired_sso_session_is_refused(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions
) -> None:
    fake_sessions.live_sids.clear()

    response = await sign_in(browser, fake_auth)

    assert response.status_code == 400
    assert set_cookie_headers(response, "portal_session") == []


async def test_back_to_the_callback_when_signed_in_goes_to_the_portal(
    browser: AsyncClient, fake_auth: FakeAuth
) -> None:
    await sign_in(browser, fake_auth)

    response = await browser.get("/portal/callback", params={"code": "used", "state": "old"})

    assert response.status_code == 303
    assert response.headers["location"] == "/portal/"


async def test_codes_and_tokens_stay_out_of_the_logs(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    location = await start_login(browser)
    code = fake_auth.authorize(location)
    await browser.get("/portal/callback", params={"code": code, "state": "forged"})
    await sign_in(browser, fake_auth)

    logs = "\n".join(f"{record.getMessage()} {getattr(record, 'fields', '')}" for record in caplog.records)

    assert "/portal/callback" in logs
    (session_id,) = fake_sessions.sessions
    (id_token,) = fake_auth.issued
    for secret in (code, session_id, id_token, query_of(location)["state"]):
        assert secret not in logs
