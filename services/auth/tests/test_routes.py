"""auth's pages and internal API as a browser, a peer and an attacker see them, in process.

Fakes at the edges: an in-memory store for Postgres, the session service and the peers' JWKS
behind a mock transport (speaking services.contracts.session), a frozen clock; the throttle's
counters live in the real Redis on 127.0.0.1:6379 under a throwaway prefix, as in test_throttle.
"""

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
import redis.asyncio as redis

from services.auth.accounts import Accounts, username_key
from services.auth.app import build_state, create_app
from services.auth.clients import hash_client_secret
from services.auth.passwords import Passwords
from services.auth.settings import Settings
from services.auth.state import AuthState
from services.auth.store import Client
from services.auth.throttle_store import ThrottleStore
from services.common.clock import FrozenClock, random_token
from services.common.errors import UNAVAILABLE_MESSAGE
from services.common.http_client import peer_http_client
from services.common.keys import SigningKey, derived_secret, generate_private_pem, jwks
from services.common.service_client import SERVICE_TOKEN_TYPE
from services.common.tokens import TokenIssuer
from services.common.web import BrowserIds, Pages
from services.contracts import session as contract

from .fakes import FakeAuthStore

PUBLIC = "http://127.0.0.1:8080"
ISSUER = f"{PUBLIC}/auth"
REDIRECT = f"{PUBLIC}/portal/callback"
CLIENT_SECRET = "a-long-portal-client-secret"
VERIFIER = "v" * 50
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
AUTH_PEM = generate_private_pem("ec")
AUTH_KEY = SigningKey.from_pem(AUTH_PEM)
# A genuine id, as auth issues them (a made-up one is replaced, see below).
BROWSER_ID = BrowserIds(derived_secret(AUTH_KEY, "browser-id")).issue()
BINDING = hashlib.sha256(BROWSER_ID.encode()).hexdigest()
CSRF = hmac.new(derived_secret(AUTH_KEY, "csrf"), BROWSER_ID.encode(), hashlib.sha256).hexdigest()
PASSWORD = "a long password"
INVALID = "Invalid username or password."
EXPIRED = "Your sign-in has expired. Please start again from the customer portal."
OIDC_PEM = generate_private_pem("rsa")  # once: an RSA key takes a while to make
AUTHORIZE = {
    "response_type": "code",
    "client_id": "portal",
    "redirect_uri": REDIRECT,
    "scope": "openid profile",
    "state": "st",
    "nonce": "nn",
    "code_challenge": CHALLENGE,
    "code_challenge_method": "S256",
}


@dataclass
class Peers:
    """mfa's and portal's JWKS and the session service, as auth reaches them server to server."""

    keys: dict[str, SigningKey]
    clock: FrozenClock
    sso: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # path -> a raw answer that replaces the contract's (a broken session service)
    broken: dict[str, httpx.Response] = field(default_factory=dict)

    def handle(self, request: httpx.Request) -> httpx.Response:
        port, path = request.url.port, request.url.path
        peer = {8102: "mfa", 8103: "session", 8104: "portal"}[port or 0]
        if path == "/internal/jwks":
            return httpx.Response(200, json=jwks(self.keys[peer]))
        assert peer == "session", f"auth called {peer}{path}"
        assert request.headers["authorization"].startswith("Bearer ")
        body = json.loads(request.content)
        self.calls.append((path, body))
        if path in self.broken:
            return self.broken[path]
        return self.answer(path, body)

    def answer(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """What the session service answers, read and written with its contract's models."""
        if path == contract.SSO_SESSION_START.path:
            start = contract.StartSsoSession.model_validate(body)
            session_id, now = random_token(), int(self.clock.now())
            started = contract.SsoSessionStarted(
                session_id=session_id, sid=random_token(), auth_time=now, expires_at=now + 43200
            )
            self.sso[session_id] = {
                **start.model_dump(),
                "sid": started.sid,
                "auth_time": now,
                "expires_at": now + 43200,
            }
            return httpx.Response(201, json=started.model_dump())
        if path == contract.SSO_SESSION_LOOKUP.path:
            ref = contract.SessionRef.model_validate(body)
            if ref.session_id not in self.sso:
                return httpx.Response(404, json={"error": "not_found"})
            found = contract.SsoSessionFound.model_validate(self.sso[ref.session_id])
            return httpx.Response(200, json=found.model_dump())
        if path == contract.SSO_SESSION_END.path:
            end = contract.EndSsoSession.model_validate(body)
            ended = [sid for sid, row in self.sso.items() if end.session_id == sid or end.sid == row["sid"]]
            for session_id in ended:
                del self.sso[session_id]
            return httpx.Response(200, json=contract.Ended(ended=bool(ended)).model_dump())
        raise AssertionError(f"auth called session {path}")


@dataclass
class Harness:
    browser: httpx.AsyncClient
    clock: FrozenClock
    store: FakeAuthStore
    peers: Peers
    auth_key: SigningKey
    oidc_key: SigningKey
    user_id: str

    def service_token(self, caller: str) -> str:
        return TokenIssuer(self.peers.keys[caller], caller, self.clock).issue(
            "auth", 60, token_type=SERVICE_TOKEN_TYPE
        )

    def complete_step(
        self, issuer_key: SigningKey | None = None, issuer: str = "mfa", **overrides: Any
    ) -> str:
        claims = {
            "stage": "complete",
            "bnd": BINDING,
            "authz": {
                name: AUTHORIZE[name]
                for name in ("client_id", "redirect_uri", "state", "nonce", "code_challenge", "scope")
            },
            "sub": self.user_id,
            "preferred_username": "alice",
            "amr": ["pwd", "otp"],
            "enrolled": False,
            **overrides,
        }
        key = issuer_key or self.peers.keys["mfa"]
        return TokenIssuer(key, issuer, self.clock).issue("auth", 600, claims)

    def set_step(self, token: str | None) -> None:
        self.browser.cookies.delete("login_step")
        if token is not None:
            self.browser.cookies.set("login_step", token)

    async def authorize(self, **overrides: str) -> httpx.Response:
        return await self.browser.get("/auth/authorize", params={**AUTHORIZE, **overrides})

    async def to_password_page(self, username: str = "alice") -> httpx.Response:
        started = await self.authorize()
        assert started.status_code == 200 and 'name="username"' in started.text
        named = await self.browser.post(
            "/auth/login/username", data={"csrf_token": CSRF, "username": username}
        )
        assert named.status_code == 303
        return await self.browser.get("/auth/login")

    async def signed_in(self) -> str:
        """Completes a sign-in (as if mfa had accepted the code); returns the sso cookie."""
        self.set_step(self.complete_step())
        page = await self.browser.get("/auth/login/complete")
        assert page.status_code == 200, page.text
        return page.cookies["sso"]


@pytest.fixture
async def redis_client() -> AsyncIterator[redis.Redis]:
    client = redis.from_url("redis://127.0.0.1:6379/0")
    yield client
    await client.aclose()


@pytest.fixture
async def throttle_prefix(redis_client: redis.Redis) -> AsyncIterator[str]:
    prefix = f"authroutes-{secrets.token_hex(4)}:"
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=f"*{prefix}*")]
    if keys:
        await redis_client.delete(*keys)


@pytest.fixture
async def harness(tmp_path: Path, redis_client: redis.Redis, throttle_prefix: str) -> AsyncIterator[Harness]:
    clock = FrozenClock()
    store = FakeAuthStore()
    store.clients["portal"] = Client("portal", hash_client_secret(CLIENT_SECRET), [REDIRECT], [f"{PUBLIC}/"])
    peers = Peers(
        {name: SigningKey.from_pem(generate_private_pem("ec")) for name in ("mfa", "portal")}, clock
    )
    (tmp_path / "auth.pem").write_bytes(AUTH_PEM)
    (tmp_path / "oidc.pem").write_bytes(OIDC_PEM)
    settings = Settings(
        signing_key_file=tmp_path / "auth.pem",
        oidc_key_file=tmp_path / "oidc.pem",
        argon2_memory_kib=1024,
        argon2_iterations=1,
    )
    user_id = await Accounts(store, Passwords(1024, 1, 1, 1)).add("alice", PASSWORD)  # type: ignore[arg-type]

    @asynccontextmanager
    async def fake_state(
        settings: Settings, pages: Pages, signing_key: SigningKey
    ) -> AsyncIterator[AuthState]:
        async with peer_http_client(httpx.MockTransport(peers.handle)) as http:
            yield build_state(
                settings,
                pages,
                signing_key,
                clock=clock,
                http=http,
                store=store,  # type: ignore[arg-type]
                throttle_store=ThrottleStore(redis_client, throttle_prefix),
                consumed=store,
                readiness_checks={},
            )

    app = create_app(settings, state_opener=fake_state)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as browser:
            browser.cookies.set("browser", BROWSER_ID)
            yield Harness(
                browser,
                clock,
                store,
                peers,
                app.state.signing_key,
                SigningKey.from_file(tmp_path / "oidc.pem"),
                str(user_id),
            )


def step_claims(response: httpx.Response, key: SigningKey, audience: str) -> dict[str, Any]:
    token = response.cookies["login_step"]
    claims: dict[str, Any] = jwt.decode(
        token,
        key.private_key.public_key(),
        algorithms=["ES256"],
        audience=audience,
        options={"verify_exp": False},  # the frozen clock is in 2023
    )
    return claims


async def test_an_unknown_client_or_redirect_gets_a_calm_400_page_and_no_redirect(harness: Harness) -> None:
    for overrides in ({"client_id": "nobody"}, {"redirect_uri": "https://evil.example/cb"}):
        page = await harness.authorize(**overrides)
        assert page.status_code == 400
        assert "This sign-in link is not valid." in page.text
        assert "location" not in page.headers and "Traceback" not in page.text


async def test_a_valid_authorize_request_answers_with_the_username_page_itself(harness: Harness) -> None:
    started = await harness.authorize()
    assert started.status_code == 200 and "location" not in started.headers
    assert 'name="username"' in started.text and f'name="csrf_token" value="{CSRF}"' in started.text
    assert started.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in started.headers["content-security-policy"]
    claims = step_claims(started, harness.auth_key, "auth")
    assert (claims["stage"], claims["bnd"], claims["authz"]["state"]) == ("username", BINDING, "st")
    # /auth/login shows the same step again (a refresh there, the language switch)
    page = await harness.browser.get("/auth/login")
    assert page.status_code == 200
    assert 'name="username"' in page.text and f'name="csrf_token" value="{CSRF}"' in page.text


async def test_the_username_pages_language_links_show_the_same_step_at_the_login_page(
    harness: Harness,
) -> None:
    started = await harness.authorize()
    links = re.findall(r'<a href="([^"]*)" lang="', started.text)
    assert links and all(link.startswith("/auth/login?lang=") for link in links), links
    switched = await harness.browser.get(links[0].replace("&amp;", "&"))
    assert switched.status_code == 200 and 'name="username"' in switched.text
    assert "set-cookie" not in switched.headers or "login_step" not in switched.headers["set-cookie"]
    named = await harness.browser.post("/auth/login/username", data={"csrf_token": CSRF, "username": "alice"})
    assert (named.status_code, named.headers["location"]) == (303, "/auth/login")


async def test_a_first_visit_without_cookies_gets_a_browser_id_and_a_form_that_posts(
    harness: Harness,
) -> None:
    harness.browser.cookies.clear()
    started = await harness.authorize()
    assert started.status_code == 200
    browser_id = started.cookies["browser"]
    assert browser_id != BROWSER_ID and "login_step" in started.cookies
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', started.text)
    assert token is not None
    named = await harness.browser.post(
        "/auth/login/username", data={"csrf_token": token.group(1), "username": "alice"}
    )
    assert (named.status_code, named.headers["location"]) == (303, "/auth/login")
    claims = step_claims(named, harness.auth_key, "auth")
    assert (claims["stage"], claims["bnd"]) == ("password", hashlib.sha256(browser_id.encode()).hexdigest())


async def test_asking_the_authorize_address_again_begins_again_at_a_new_username_step(
    harness: Harness,
) -> None:
    first = await harness.authorize()
    await harness.to_password_page()
    again = await harness.authorize()
    assert again.status_code == 200 and 'name="username"' in again.text
    claims = step_claims(again, harness.auth_key, "auth")
    assert claims["stage"] == "username"
    assert claims["jti"] != step_claims(first, harness.auth_key, "auth")["jti"]
    # the password step is replaced: the login page now shows the username page
    page = await harness.browser.get("/auth/login")
    assert 'name="username"' in page.text and 'name="password"' not in page.text


async def test_a_known_and_an_unknown_name_get_the_same_password_page(harness: Harness) -> None:
    known = await harness.to_password_page("alice")
    unknown = await harness.to_password_page("mallory")
    assert known.status_code == unknown.status_code == 200
    assert 'name="password"' in known.text
    assert known.text.replace("alice", "NAME") == unknown.text.replace("mallory", "NAME")


async def test_a_wrong_password_is_refused_and_the_right_one_hands_over_to_mfa(harness: Harness) -> None:
    await harness.to_password_page(" Alice ")
    wrong = await harness.browser.post("/auth/login/password", data={"csrf_token": CSRF, "password": "nope"})
    assert wrong.status_code == 401 and INVALID in wrong.text
    assert "set-cookie" not in wrong.headers

    right = await harness.browser.post(
        "/auth/login/password", data={"csrf_token": CSRF, "password": PASSWORD}
    )
    assert (right.status_code, right.headers["location"]) == (303, "/mfa/")
    claims = step_claims(right, harness.auth_key, "mfa")
    assert claims["stage"] == "otp" and claims["amr"] == ["pwd"]
    assert (claims["sub"], claims["preferred_username"]) == (harness.user_id, "alice")
    assert claims["account"] == username_key(" Alice ")
    assert harness.store.outcomes("sign_in.password") == ["invalid", "ok"]
    assert PASSWORD not in json.dumps([row.__dict__ for row in harness.store.audit])


async def test_the_password_step_cannot_be_used_twice(harness: Harness) -> None:
    await harness.to_password_page()
    password_step = harness.browser.cookies["login_step"]
    right = await harness.browser.post(
        "/auth/login/password", data={"csrf_token": CSRF, "password": PASSWORD}
    )
    assert right.status_code == 303
    harness.set_step(password_step)
    replay = await harness.browser.post(
        "/auth/login/password", data={"csrf_token": CSRF, "password": PASSWORD}
    )
    assert replay.status_code == 400 and EXPIRED in replay.text
    # The attempt is audited, replay or not: the step is used up in the statement that audits it.
    assert harness.store.outcomes("sign_in.password") == ["ok", "ok"]
    assert "set-cookie" not in replay.headers


async def test_the_username_step_cannot_be_used_twice_and_its_replay_is_not_audited(
    harness: Harness,
) -> None:
    await harness.authorize()
    username_step = harness.browser.cookies["login_step"]
    named = await harness.browser.post("/auth/login/username", data={"csrf_token": CSRF, "username": "alice"})
    assert named.status_code == 303
    harness.set_step(username_step)
    replay = await harness.browser.post(
        "/auth/login/username", data={"csrf_token": CSRF, "username": "alice"}
    )
    assert replay.status_code == 400 and EXPIRED in replay.text
    assert [(row.outcome, row.user_id) for row in harness.store.audit if row.event == "sign_in.username"] == [
        ("submitted", harness.user_id)
    ]


async def test_a_form_without_the_right_csrf_token_is_refused(harness: Harness) -> None:
    await harness.authorize()
    missing = await harness.browser.post("/auth/login/username", data={"username": "alice"})
    assert missing.status_code == 400 and "Traceback" not in missing.text
    forged = await harness.browser.post(
        "/auth/login/username", data={"username": "alice", "csrf_token": "x" * 64}
    )
    assert forged.status_code == 403
    assert "This form has expired." in forged.text


async def test_the_complete_step_makes_the_sso_session_and_the_continue_page(harness: Harness) -> None:
    harness.set_step(harness.complete_step())
    page = await harness.browser.get("/auth/login/complete")
    assert page.status_code == 200
    assert "/auth/authorize?" in page.text
    [(path, body)] = harness.peers.calls
    assert path == "/internal/sso-sessions"
    assert body == {
        "user_id": harness.user_id,
        "username": "alice",
        "amr": ["pwd", "otp"],
        # The browser's short label (its User-Agent is the test client's) and address, not the User-Agent.
        "device": "Unknown device",
        "address": "127.0.0.1",
    }
    cookies = {value.split("=", 1)[0]: value for value in page.headers.get_list("set-cookie")}
    for attribute in ("Path=/auth", "HttpOnly", "SameSite=lax", "Max-Age=43200"):
        assert attribute in cookies["sso"]
    assert "Max-Age=0" in cookies["login_step"]  # the used step token is gone from the browser
    assert harness.store.outcomes("sign_in.complete") == ["ok"]


@pytest.mark.parametrize(
    ("left", "said", "make_new"),
    [
        (None, None, False),
        (9, "You signed in with a recovery code. You have 9 recovery codes left.", False),
        (2, "You signed in with a recovery code. You have 2 recovery codes left.", True),
        (1, "You signed in with a recovery code. You have 1 recovery code left.", True),
        (0, "You signed in with a recovery code. You have 0 recovery codes left.", True),
    ],
)
async def test_the_continue_page_says_how_many_recovery_codes_are_left(
    harness: Harness, left: int | None, said: str | None, make_new: bool
) -> None:
    claims: dict[str, Any] = {} if left is None else {"recovery_codes_left": left}
    harness.set_step(harness.complete_step(**claims))
    page = await harness.browser.get("/auth/login/complete")
    assert page.status_code == 200
    assert ('id="recovery-codes-left"' in page.text) is (said is not None)
    if said is not None:
        assert said in page.text
    assert ("Make new ones on the Security page of the customer portal." in page.text) is make_new


async def test_a_complete_step_is_used_once_and_only_from_mfa(harness: Harness) -> None:
    step = harness.complete_step()
    harness.set_step(step)
    assert (await harness.browser.get("/auth/login/complete")).status_code == 200
    harness.set_step(step)
    replay = await harness.browser.get("/auth/login/complete")
    assert replay.status_code == 400 and EXPIRED in replay.text
    assert harness.store.outcomes("sign_in.complete") == ["ok"], "a replay audits nothing"
    # auth's own key, claiming the stage only mfa may mint
    harness.set_step(harness.complete_step(issuer_key=harness.auth_key, issuer="auth"))
    forged = await harness.browser.get("/auth/login/complete")
    assert forged.status_code == 400 and EXPIRED in forged.text
    assert len(harness.peers.sso) == 1


async def test_a_live_sso_session_gets_a_code_without_a_prompt_and_the_code_an_id_token(
    harness: Harness,
) -> None:
    await harness.signed_in()
    [session] = harness.peers.sso.values()
    again = await harness.authorize()
    assert again.status_code == 302
    location = urlsplit(again.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = {name: values[0] for name, values in parse_qs(location.query).items()}
    assert (query["state"], query["iss"]) == ("st", ISSUER)

    basic = base64.b64encode(f"portal:{CLIENT_SECRET}".encode()).decode()
    tokens = await harness.browser.post(
        "/auth/token",
        content=urlencode(
            {
                "grant_type": "authorization_code",
                "code": query["code"],
                "redirect_uri": REDIRECT,
                "code_verifier": VERIFIER,
            }
        ),
        headers={"authorization": f"Basic {basic}", "content-type": "application/x-www-form-urlencoded"},
    )
    assert tokens.status_code == 200, tokens.text
    claims = jwt.decode(
        tokens.json()["id_token"],
        harness.oidc_key.private_key.public_key(),
        algorithms=["RS256"],
        audience="portal",
        options={"verify_exp": False},
    )
    assert (claims["iss"], claims["sub"], claims["sid"], claims["nonce"]) == (
        ISSUER,
        harness.user_id,
        session["sid"],
        "nn",
    )


async def test_a_disabled_users_sso_session_counts_for_nothing(harness: Harness) -> None:
    await harness.signed_in()
    await harness.store.set_disabled(username_key("alice"), True)
    again = await harness.authorize()
    assert again.status_code == 200 and 'name="username"' in again.text
    silent = await harness.authorize(prompt="none")
    assert silent.status_code == 302 and "error=login_required" in silent.headers["location"]
    assert harness.store.codes == {}, "no code is saved for a disabled account"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"user_id": "u"}),  # keys missing: a 500 before the contracts
        httpx.Response(200, content=b"<html>bad gateway</html>"),
        httpx.Response(500, json={"error": "internal_error"}),
    ],
)
async def test_a_session_service_answer_outside_the_contract_is_a_calm_503(
    harness: Harness, answer: httpx.Response
) -> None:
    await harness.signed_in()
    harness.peers.broken["/internal/sso-sessions/lookup"] = answer
    page = await harness.authorize()
    assert page.status_code == 503
    assert str(UNAVAILABLE_MESSAGE) in page.text and "Traceback" not in page.text


async def test_a_cookie_that_is_no_session_id_asks_nobody(harness: Harness) -> None:
    harness.browser.cookies.set("sso", "not a session id!", domain="127.0.0.1", path="/auth")
    started = await harness.authorize()
    assert started.status_code == 200 and 'name="username"' in started.text
    assert harness.peers.calls == []


async def test_logout_with_the_sessions_own_id_token_ends_it(harness: Harness) -> None:
    await harness.signed_in()
    [session] = harness.peers.sso.values()
    hint = TokenIssuer(harness.oidc_key, ISSUER, harness.clock).issue(
        "portal", 300, {"sub": harness.user_id, "sid": session["sid"]}
    )
    without_hint = await harness.browser.get("/auth/logout")
    assert without_hint.status_code == 200 and 'action="/auth/logout"' in without_hint.text
    assert len(harness.peers.sso) == 1

    ended = await harness.browser.get(
        "/auth/logout",
        params={"id_token_hint": hint, "post_logout_redirect_uri": f"{PUBLIC}/", "client_id": "portal"},
    )
    assert (ended.status_code, ended.headers["location"]) == (303, f"{PUBLIC}/")
    assert harness.peers.sso == {}
    assert ("/internal/sso-sessions/end", {"sid": session["sid"]}) in harness.peers.calls
    assert harness.store.outcomes("logout") == ["sso"]


async def test_logout_never_redirects_off_the_allow_list(harness: Harness) -> None:
    page = await harness.browser.get(
        "/auth/logout", params={"post_logout_redirect_uri": "https://evil.example/", "client_id": "portal"}
    )
    assert page.status_code == 400 and "location" not in page.headers


async def internal_post(harness: Harness, path: str, body: Any, caller: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {harness.service_token(caller)}"} if caller else {}
    return await harness.browser.post(path, json=body, headers=headers)


async def test_code_attempts_are_counted_for_mfa_only(harness: Harness) -> None:
    attempt = {"kind": "otp", "account": "alice", "ip": "203.0.113.9"}
    assert (await internal_post(harness, "/internal/attempts/begin", attempt, None)).status_code == 401
    assert (await internal_post(harness, "/internal/attempts/begin", attempt, "portal")).status_code == 403
    answers = [await internal_post(harness, "/internal/attempts/begin", attempt, "mfa") for _ in range(6)]
    assert [answer.json()["allowed"] for answer in answers] == [True] * 5 + [False]
    # The refused answer carries the lock's wait, for the customer's message at mfa.
    assert answers[-1].json() == {"allowed": False, "locked_seconds": 60}
    again = await internal_post(harness, "/internal/attempts/begin", attempt, "mfa")
    assert again.json()["allowed"] is False and 0 < again.json()["locked_seconds"] <= 60
    assert harness.store.outcomes("lockout") != []


async def test_a_right_code_resets_the_accounts_failures(harness: Harness) -> None:
    attempt = {"kind": "otp", "account": "alice", "ip": "203.0.113.9"}
    for _ in range(4):
        await internal_post(harness, "/internal/attempts/begin", attempt, "mfa")
    succeeded = await internal_post(harness, "/internal/attempts/succeeded", attempt, "mfa")
    assert (succeeded.status_code, succeeded.json()) == (200, {})
    answers = [await internal_post(harness, "/internal/attempts/begin", attempt, "mfa") for _ in range(5)]
    assert all(answer.json()["allowed"] is True for answer in answers)


# A sign-in's right code: the complete step names the browser whose counts auth clears.

CODE_ATTEMPT = {"kind": "otp", "account": "alice", "ip": "203.0.113.9"}


async def code_attempts_allowed(
    harness: Harness, count: int, attempt: dict[str, Any] = CODE_ATTEMPT
) -> list[bool]:
    answers = [await internal_post(harness, "/internal/attempts/begin", attempt, "mfa") for _ in range(count)]
    return [answer.json()["allowed"] for answer in answers]


async def test_loading_the_complete_step_clears_the_code_failures_it_names(harness: Harness) -> None:
    assert await code_attempts_allowed(harness, 4) == [True] * 4
    harness.set_step(harness.complete_step(clear_throttle={**CODE_ATTEMPT, "device": None}))
    assert (await harness.browser.get("/auth/login/complete")).status_code == 200
    # Back to zero: five more attempts in the window, and the sixth locks.
    assert await code_attempts_allowed(harness, 6) == [True] * 5 + [False]


async def test_a_complete_step_without_the_claim_clears_nothing(harness: Harness) -> None:
    assert await code_attempts_allowed(harness, 4) == [True] * 4
    harness.set_step(harness.complete_step())
    assert (await harness.browser.get("/auth/login/complete")).status_code == 200
    assert await code_attempts_allowed(harness, 2) == [True, False]


async def test_a_known_browsers_complete_step_clears_that_browsers_counts_only(harness: Harness) -> None:
    # The step's claim says which browser, not the request (which carries no device cookie here).
    known = {**CODE_ATTEMPT, "device": "device-1"}
    assert await code_attempts_allowed(harness, 4, known) == [True] * 4
    assert await code_attempts_allowed(harness, 4) == [True] * 4
    harness.set_step(harness.complete_step(clear_throttle=known))
    assert (await harness.browser.get("/auth/login/complete")).status_code == 200
    assert await code_attempts_allowed(harness, 5, known) == [True] * 5
    assert await code_attempts_allowed(harness, 2) == [True, False], "the unknown browsers' stay"


async def test_a_replayed_complete_step_clears_nothing_more(harness: Harness) -> None:
    step = harness.complete_step(clear_throttle=CODE_ATTEMPT)
    harness.set_step(step)
    assert (await harness.browser.get("/auth/login/complete")).status_code == 200
    assert await code_attempts_allowed(harness, 4) == [True] * 4
    harness.set_step(step)
    replay = await harness.browser.get("/auth/login/complete")
    assert replay.status_code == 400 and EXPIRED in replay.text
    assert await code_attempts_allowed(harness, 2) == [True, False]


@pytest.mark.parametrize(
    "forged",
    [
        {"issuer": "auth"},  # auth's own key, claiming the stage only mfa may mint
        {"clear_throttle": {**CODE_ATTEMPT, "account": "bob"}},  # another account's counts
        {"clear_throttle": {**CODE_ATTEMPT, "kind": "password"}},
        {"clear_throttle": {"account": "alice"}},
        {"clear_throttle": "alice"},
    ],
)
async def test_a_forged_or_malformed_complete_step_clears_nothing(
    harness: Harness, forged: dict[str, Any]
) -> None:
    claims = {"clear_throttle": CODE_ATTEMPT, **forged}
    issuer = claims.pop("issuer", "mfa")
    key = harness.auth_key if issuer == "auth" else None
    assert await code_attempts_allowed(harness, 4) == [True] * 4
    harness.set_step(harness.complete_step(issuer_key=key, issuer=issuer, **claims))
    refused = await harness.browser.get("/auth/login/complete")
    assert refused.status_code == 400 and EXPIRED in refused.text
    assert harness.peers.sso == {}, "no session either"
    assert await code_attempts_allowed(harness, 2) == [True, False]


async def test_the_portal_and_only_the_portal_records_logouts(harness: Harness) -> None:
    entry = {
        "event": "logout",
        "outcome": "portal",
        "user_id": "u1",
        "username": "alice",
        "ip": "203.0.113.9",
    }
    recorded = await internal_post(harness, "/internal/audit", entry, "portal")
    assert (recorded.status_code, recorded.json()) == (201, {})
    assert (await internal_post(harness, "/internal/audit", entry, "mfa")).status_code == 403
    other_event = await internal_post(
        harness, "/internal/audit", {**entry, "event": "sign_in.password"}, "portal"
    )
    assert other_event.status_code == 400
    assert harness.store.outcomes("logout") == ["portal"]


async def test_a_step_token_is_no_service_token(harness: Harness) -> None:
    step = harness.complete_step()
    refused = await harness.browser.post(
        "/internal/audit",
        json={"event": "logout", "outcome": "portal", "ip": "203.0.113.9"},
        headers={"authorization": f"Bearer {step}"},
    )
    assert refused.status_code == 401
    assert re.search(r'"error":\s*"unauthorized"', refused.text)
