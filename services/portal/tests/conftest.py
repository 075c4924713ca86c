import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from services.common.clock import FrozenClock, random_token
from services.common.errors import DependencyUnavailable
from services.common.keys import SigningKey, generate_private_pem
from services.common.tokens import TokenIssuer
from services.portal.app import create_app, open_state
from services.portal.oidc_login import SignedIn
from services.portal.settings import Settings
from services.portal.store import NewPortalSession, PortalSession

PUBLIC_URL = "http://127.0.0.1:8080"
ISSUER = f"{PUBLIC_URL}/auth"
AUTH_URL = "http://127.0.0.1:8101"
SESSION_URL = "http://127.0.0.1:8103"
CLIENT_SECRET = "a-long-portal-client-secret"
SESSION_LIFETIME = 43200


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@pytest.fixture(scope="session")
def auth_key() -> SigningKey:
    # What auth signs the portal's id_tokens with: ES256, the alg the portal's client registered.
    return SigningKey.from_pem(generate_private_pem("ec"))


@pytest.fixture(scope="session")
def auth_rsa_key() -> SigningKey:
    # auth's RS256 key, in its JWKS for the other clients' id_tokens: not the portal's alg.
    return SigningKey.from_pem(generate_private_pem("rsa"))


@dataclass
class FakeAuth:
    """auth's JWKS and token endpoint, as the portal reaches them server to server."""

    key: SigningKey
    clock: FrozenClock
    # Published in the JWKS beside key, never used by the token endpoint unless a test says so
    also_published: tuple[SigningKey, ...] = ()
    # code -> what /authorize saw, and who signed in
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    # Replaces the id_token the next exchange returns: f(default_claims) -> token
    make_id_token: Callable[[dict[str, Any]], str] | None = None
    # Every id_token the token endpoint gave out
    issued: list[str] = field(default_factory=list)
    # What the portal put into auth's audit trail
    audit_entries: list[dict[str, Any]] = field(default_factory=list)

    def authorize(self, location: str, username: str = "alice", sid: str = "sid-1") -> str:
        """What auth does with the authorize request once the user has signed in: a code."""
        query = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
        code = random_token()
        self.codes[code] = {**query, "username": username, "sid": sid}
        return code

    def id_token(self, claims: dict[str, Any]) -> str:
        return TokenIssuer(self.key, ISSUER, self.clock).issue("portal", 300, claims)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/jwks":
            return httpx.Response(
                200, json={"keys": [key.public_jwk() for key in (self.key, *self.also_published)]}
            )
        if request.url.path == "/internal/audit":
            self.audit_entries.append(json.loads(request.content))
            return httpx.Response(201, json={})
        assert request.url.path == "/auth/token"
        form = {name: values[0] for name, values in parse_qs(request.content.decode()).items()}
        self.token_requests.append({"form": form, "authorization": request.headers["authorization"]})
        expected = "Basic " + base64.b64encode(f"portal:{CLIENT_SECRET}".encode()).decode()
        if request.headers["authorization"] != expected:
            return httpx.Response(401, json={"error": "invalid_client"})
        authorized = self.codes.pop(form.get("code", ""), None)
        if (
            authorized is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != authorized["redirect_uri"]
            or s256(form.get("code_verifier", "")) != authorized["code_challenge"]
        ):
            return httpx.Response(400, json={"error": "invalid_grant"})
        claims = {
            "sub": "user-1",
            "preferred_username": authorized["username"],
            "sid": authorized["sid"],
            "nonce": authorized["nonce"],
            "amr": ["pwd", "otp"],
        }
        token = self.make_id_token(claims) if self.make_id_token else self.id_token(claims)
        self.issued.append(token)
        return httpx.Response(200, json={"id_token": token, "token_type": "Bearer"})


@dataclass
class FakeSessions:
    """The session service as the portal uses it; `down` makes every call fail like an outage."""

    clock: FrozenClock
    live_sids: set[str] = field(default_factory=lambda: {"sid-1"})
    sessions: dict[str, PortalSession] = field(default_factory=dict)
    ended: list[str] = field(default_factory=list)
    revoked_users: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    down: bool = False

    def _check(self) -> None:
        if self.down:
            raise DependencyUnavailable(detail="session unreachable")

    async def create(self, signed_in: SignedIn) -> NewPortalSession | None:
        self._check()
        if signed_in.sid not in self.live_sids:
            return None
        session_id = random_token()
        expires_at = int(self.clock.now()) + SESSION_LIFETIME
        self.sessions[session_id] = PortalSession(
            signed_in.user_id, signed_in.username, signed_in.sid, expires_at
        )
        return NewPortalSession(session_id, expires_at)

    async def find(self, session_id: str) -> PortalSession | None:
        self._check()
        session = self.sessions.get(session_id)
        return session if session is not None and session.sid in self.live_sids else None

    async def find_recent(self, session_id: str) -> PortalSession | None:
        return await self.find(session_id)

    def forget(self, user_id: str) -> None:
        self.forgotten.append(user_id)

    async def end(self, session_id: str) -> bool:
        self._check()
        self.ended.append(session_id)
        return self.sessions.pop(session_id, None) is not None

    async def end_every_session_of(self, user_id: str) -> int:
        self._check()
        mine = [session_id for session_id, session in self.sessions.items() if session.user_id == user_id]
        for session_id in mine:
            del self.sessions[session_id]
        self.revoked_users.append(user_id)
        return len(mine)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def fake_auth(auth_key: SigningKey, auth_rsa_key: SigningKey, clock: FrozenClock) -> FakeAuth:
    return FakeAuth(auth_key, clock, (auth_rsa_key,))


@pytest.fixture
def fake_sessions(clock: FrozenClock) -> FakeSessions:
    return FakeSessions(clock)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    key_file = tmp_path / "portal.pem"
    key_file.write_bytes(generate_private_pem("ec"))
    return Settings(signing_key_file=key_file, client_secret=SecretStr(CLIENT_SECRET))


@pytest.fixture
async def app(
    settings: Settings, clock: FrozenClock, fake_auth: FakeAuth, fake_sessions: FakeSessions
) -> AsyncIterator[FastAPI]:
    application = create_app(
        settings,
        state_opener=partial(
            open_state, clock=clock, transport=httpx.MockTransport(fake_auth.handle), sessions=fake_sessions
        ),
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
        # The id auth gives every browser at its first step; the portal only reads it.
        client.cookies.set("browser", "b" * 43 + ".from-auth")
        yield client


async def start_login(browser: httpx.AsyncClient) -> str:
    response = await browser.get("/portal/login")
    assert response.status_code == 302
    return response.headers["location"]


async def sign_in(browser: httpx.AsyncClient, fake_auth: FakeAuth, username: str = "alice") -> httpx.Response:
    location = await start_login(browser)
    code = fake_auth.authorize(location, username=username)
    state = parse_qs(urlsplit(location).query)["state"][0]
    return await browser.get("/portal/callback", params={"code": code, "state": state})


def csrf_from(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


def set_cookie_headers(response: httpx.Response, name: str) -> list[str]:
    return [value for value in response.headers.get_list("set-cookie") if value.startswith(f"{name}=")]
