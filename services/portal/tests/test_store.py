"""The portal's two server-to-server edges: the session service and auth's token endpoint."""

import base64
import json
from typing import Any

import httpx
import pytest

from services.common.clock import FrozenClock
from services.common.errors import DependencyUnavailable
from services.common.http_client import peer_http_client
from services.common.keys import SigningKey, generate_private_pem, jwks
from services.common.service_client import ServiceClient
from services.common.tokens import StaticKeys, TokenIssuer, TokenVerifier
from services.contracts.session import SessionClient
from services.portal.oidc_login import LoginFailed, SignedIn, TokenEndpoint
from services.portal.store import SessionServicePortalSessions

from .conftest import SESSION_URL


class Recorder:
    def __init__(self, status: int, body: Any) -> None:
        self.status, self.body = status, body
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, json=self.body)


def store_with(recorder: Recorder, key: SigningKey, clock: FrozenClock) -> SessionServicePortalSessions:
    http = peer_http_client(httpx.MockTransport(recorder))
    return SessionServicePortalSessions(
        SessionClient(ServiceClient(http, TokenIssuer(key, "portal", clock), SESSION_URL, "session"))
    )


@pytest.fixture
def portal_key() -> SigningKey:
    return SigningKey.from_pem(generate_private_pem("ec"))


async def test_create_sends_the_id_token_claims_with_a_service_token(
    portal_key: SigningKey,
) -> None:
    clock = FrozenClock()
    recorder = Recorder(201, {"session_id": "S" * 43, "expires_at": 1_700_043_200})
    store = store_with(recorder, portal_key, clock)

    created = await store.create(SignedIn("user-1", "alice", "sid-1"))

    assert created is not None and created.session_id == "S" * 43
    (request,) = recorder.requests
    assert str(request.url) == f"{SESSION_URL}/internal/portal-sessions"
    assert json.loads(request.content) == {
        "sid": "sid-1",
        "user_id": "user-1",
        "username": "alice",
    }
    token = request.headers["authorization"].removeprefix("Bearer ")
    verifier = TokenVerifier(
        StaticKeys(jwks(portal_key)), issuers={"portal"}, audience="session", clock=clock
    )
    assert (await verifier.verify(token))["iss"] == "portal"


async def test_a_404_means_no_session(portal_key: SigningKey) -> None:
    store = store_with(Recorder(404, {"error": "not_found"}), portal_key, FrozenClock())

    assert await store.find("S" * 43) is None
    assert await store.create(SignedIn("user-1", "alice", "sid-1")) is None
    assert await store.end("S" * 43) is False


@pytest.mark.parametrize("cookie", ["", "x" * 129, "not a session id", "ünïcode"])
async def test_a_malformed_cookie_is_no_session_and_asks_nobody(portal_key: SigningKey, cookie: str) -> None:
    recorder = Recorder(200, {})
    store = store_with(recorder, portal_key, FrozenClock())

    assert await store.find(cookie) is None
    assert await store.end(cookie) is False
    assert recorder.requests == []


@pytest.mark.parametrize(("status", "body"), [(500, {"error": "x"}), (200, ["not", "an", "object"])])
async def test_a_broken_session_service_is_an_outage(portal_key: SigningKey, status: int, body: Any) -> None:
    store = store_with(Recorder(status, body), portal_key, FrozenClock())

    with pytest.raises(DependencyUnavailable):
        await store.find("S" * 43)


async def test_token_endpoint_uses_client_secret_basic_and_pkce() -> None:
    recorder = Recorder(200, {"id_token": "the.id.token"})
    http = peer_http_client(httpx.MockTransport(recorder))
    endpoint = TokenEndpoint(http, "http://auth/auth/token", "portal", "s3cret:with/odd chars")

    id_token = await endpoint.exchange("the-code", "http://gw/portal/callback", "v" * 43)

    assert id_token == "the.id.token"
    (request,) = recorder.requests
    scheme, _, credentials = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == "portal:s3cret%3Awith%2Fodd%20chars"
    form = dict(item.split("=", 1) for item in request.content.decode().split("&"))
    assert form["grant_type"] == "authorization_code"
    assert form["code"] == "the-code"
    assert form["code_verifier"] == "v" * 43


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"error": "invalid_grant"}, LoginFailed),
        (200, {"access_token": "no id_token"}, LoginFailed),
        (503, {"error": "down"}, DependencyUnavailable),
    ],
)
async def test_token_endpoint_refusals(status: int, body: Any, error: type[Exception]) -> None:
    http = peer_http_client(httpx.MockTransport(Recorder(status, body)))
    endpoint = TokenEndpoint(http, "http://auth/auth/token", "portal", "secret-value")

    with pytest.raises(error):
        await endpoint.exchange("code", "http://gw/portal/callback", "v" * 43)
