"""The typed clients: what they send, and how an answer outside the contract is met (a calm 503)."""

import json
import logging
from typing import Any
from uuid import uuid4

import httpx
import pytest

from services.auth.sso_sessions import SsoSessions
from services.common.clock import FrozenClock
from services.common.errors import UNAVAILABLE_MESSAGE, DependencyUnavailable
from services.common.http_client import peer_http_client
from services.common.keys import SigningKey, generate_private_pem
from services.common.logging import request_id_var
from services.common.service_client import ServiceClient
from services.common.tokens import TokenIssuer
from services.contracts.auth import AuthInternalClient
from services.contracts.session import SessionClient, is_session_id

KEY = SigningKey.from_pem(generate_private_pem("ec"))
SESSION_ID = "S" * 43


class Callee:
    """Answers every call with one status and body, and keeps what it was sent."""

    def __init__(self, status: int, body: Any) -> None:
        self.status, self.body = status, body
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.body, bytes):
            return httpx.Response(self.status, content=self.body)
        return httpx.Response(self.status, json=self.body)

    def sent(self) -> list[tuple[str, Any]]:
        return [(request.url.path, json.loads(request.content)) for request in self.requests]


def service_client(callee: Callee, caller: str, audience: str) -> ServiceClient:
    http = peer_http_client(httpx.MockTransport(callee))
    return ServiceClient(http, TokenIssuer(KEY, caller, FrozenClock()), f"http://{audience}.test", audience)


def session_client(callee: Callee) -> SessionClient:
    return SessionClient(service_client(callee, "auth", "session"))


def found_sso(**overrides: Any) -> dict[str, Any]:
    body = {
        "user_id": str(uuid4()),
        "username": "alice",
        "sid": "P" * 43,
        "amr": ["pwd", "otp"],
        "auth_time": 1_700_000_000,
        "expires_at": 1_700_043_200,
    }
    return {name: value for name, value in {**body, **overrides}.items() if value is not None}


async def test_a_lookup_answer_in_the_contract_is_a_session() -> None:
    body = found_sso()
    callee = Callee(200, body)
    session = await SsoSessions(session_client(callee)).lookup(SESSION_ID)
    assert session is not None
    assert (str(session.user_id), session.username, session.sid) == (body["user_id"], "alice", "P" * 43)
    assert callee.sent() == [("/internal/sso-sessions/lookup", {"session_id": SESSION_ID})]


async def test_a_request_is_sent_as_compact_utf8_json_with_its_token_and_request_id() -> None:
    # The body comes straight from model_dump_json: the bytes json.dumps of model_dump(mode="json")
    # sent before, no null for a field left out, the content type and each call's request id.
    callee = Callee(201, {"session_id": SESSION_ID, "sid": "P" * 43, "auth_time": 1, "expires_at": 2})
    client = session_client(callee)
    token = request_id_var.set("req-1")
    try:
        await client.start_sso("u-1", "zoë", ["pwd"], device="Firefox")
    finally:
        request_id_var.reset(token)
    [request] = callee.requests
    assert request.content == (
        b'{"user_id":"u-1","username":"zo\xc3\xab","amr":["pwd"],"device":"Firefox","address":""}'
    )
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-request-id"] == "req-1"
    assert request.headers["authorization"] == f"Bearer {client.client.service_token()}"


@pytest.mark.parametrize(
    "body",
    [
        found_sso(username=None),  # a missing key: a 500 in auth before the contracts
        found_sso(expires_at="soon"),
        found_sso(sid="not a session id"),
        found_sso(user_id="not-a-uuid"),
        ["not", "an", "object"],
        b"<html>proxy error</html>",
    ],
)
async def test_a_lookup_answer_outside_the_contract_is_a_calm_503(
    body: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR), pytest.raises(DependencyUnavailable) as refused:
        await SsoSessions(session_client(Callee(200, body))).lookup(SESSION_ID)
    assert refused.value.status_code == 503
    assert refused.value.message == UNAVAILABLE_MESSAGE
    # The log names where the shape was wrong, never a value (a session id, a token).
    assert SESSION_ID not in caplog.text and "P" * 43 not in caplog.text


async def test_a_404_is_no_session_and_a_malformed_cookie_asks_nobody() -> None:
    callee = Callee(404, {"error": "not_found"})
    sessions = SsoSessions(session_client(callee))
    assert await sessions.lookup(SESSION_ID) is None
    assert callee.requests, "the session service was asked"
    callee.requests.clear()
    for cookie in ("", "x" * 129, "a b", "ünïcode", "abc\n"):
        assert await sessions.lookup(cookie) is None
        await sessions.end(session_id=cookie)
    assert callee.requests == []


@pytest.mark.parametrize("status", [404, 200])
async def test_creating_an_sso_session_without_an_answer_is_a_calm_503(status: int) -> None:
    # A 404 here is a missing endpoint; a 200 without the session id is no session either.
    sessions = SsoSessions(session_client(Callee(status, {"sid": "P" * 43})))
    with pytest.raises(DependencyUnavailable):
        await sessions.create(uuid4(), "alice", ["pwd", "otp"])


async def test_ending_by_sid_sends_only_the_sid() -> None:
    callee = Callee(200, {"ended": True})
    assert await session_client(callee).end_sso(sid="P" * 43) is True
    assert callee.sent() == [("/internal/sso-sessions/end", {"sid": "P" * 43})]


async def test_a_request_the_callee_would_refuse_is_refused_before_it_is_sent() -> None:
    callee = Callee(201, {"session_id": SESSION_ID, "expires_at": 1})
    with pytest.raises(DependencyUnavailable):
        await session_client(callee).start_portal("sid with spaces", "user-1", "alice")
    assert callee.requests == []


@pytest.mark.parametrize(("body", "allowed"), [({"allowed": True}, True), ({"allowed": False}, False)])
async def test_begin_attempt_reads_a_plain_boolean(body: Any, allowed: bool) -> None:
    callee = Callee(200, body)
    client = AuthInternalClient(service_client(callee, "mfa", "auth"))
    assert (await client.begin_attempt("alice", "203.0.113.9")).allowed is allowed
    assert callee.sent() == [
        ("/internal/attempts/begin", {"kind": "otp", "account": "alice", "ip": "203.0.113.9"})
    ]


async def test_a_logout_entry_is_sent_as_the_contract_says() -> None:
    callee = Callee(201, {})
    client = AuthInternalClient(service_client(callee, "portal", "auth"))
    await client.record_logout("portal", user_id="u1", username="alice", ip="203.0.113.9", user_agent="UA")
    assert callee.sent() == [
        (
            "/internal/audit",
            {
                "event": "logout",
                "outcome": "portal",
                "user_id": "u1",
                "username": "alice",
                "ip": "203.0.113.9",
                "user_agent": "UA",
            },
        )
    ]


@pytest.mark.parametrize(
    ("value", "shaped"),
    [("A" * 43, True), ("a-b_c", True), ("x" * 128, True), ("x" * 129, False), ("", False), ("a.b", False)],
)
def test_the_one_session_id_rule(value: str, shaped: bool) -> None:
    assert is_session_id(value) is shaped


class FailsOnce(Callee):
    """The first call is lost on its way (a replica going away), the next ones answer."""

    def __init__(self, first: httpx.HTTPError | int, status: int, body: Any) -> None:
        super().__init__(status, body)
        self.first: httpx.HTTPError | int | None = first

    def __call__(self, request: httpx.Request) -> httpx.Response:
        first, self.first = self.first, None
        if isinstance(first, httpx.HTTPError):
            self.requests.append(request)
            raise first
        if first is not None:
            self.requests.append(request)
            return httpx.Response(first, content=b"<html>502 Bad Gateway</html>")
        return super().__call__(request)


LOST_ON_THE_WAY = [
    httpx.RemoteProtocolError("Server disconnected without sending a response."),
    httpx.ConnectError("Connection refused"),
    502,
]


@pytest.mark.parametrize("first", LOST_ON_THE_WAY)
async def test_an_idempotent_call_is_sent_once_more_when_its_answer_was_lost(
    first: httpx.HTTPError | int,
) -> None:
    callee = FailsOnce(first, 200, found_sso())
    assert await SsoSessions(session_client(callee)).lookup(SESSION_ID) is not None
    assert callee.sent() == [("/internal/sso-sessions/lookup", {"session_id": SESSION_ID})] * 2


async def test_an_idempotent_call_is_sent_twice_at_most() -> None:
    callee = Callee(502, {"error": "bad gateway"})
    with pytest.raises(DependencyUnavailable):
        await session_client(callee).end_sso(sid="P" * 43)
    assert len(callee.requests) == 2


@pytest.mark.parametrize("first", LOST_ON_THE_WAY)
async def test_a_session_start_is_never_resent(first: httpx.HTTPError | int) -> None:
    # The session service may have made the session: a resend would make a second one.
    callee = FailsOnce(first, 201, {"session_id": SESSION_ID, "expires_at": 1})
    with pytest.raises(DependencyUnavailable):
        await session_client(callee).start_sso(str(uuid4()), "alice", ["pwd", "otp"])
    assert len(callee.requests) == 1


async def test_a_503_of_the_callee_itself_is_its_answer_not_a_lost_call() -> None:
    callee = Callee(503, {"error": "unavailable"})
    with pytest.raises(DependencyUnavailable):
        await SsoSessions(session_client(callee)).lookup(SESSION_ID)
    assert len(callee.requests) == 1


@pytest.mark.parametrize("first", LOST_ON_THE_WAY)
async def test_a_sign_in_attempt_is_never_counted_by_a_resend(first: httpx.HTTPError | int) -> None:
    callee = FailsOnce(first, 200, {"allowed": True})
    with pytest.raises(DependencyUnavailable):
        await AuthInternalClient(service_client(callee, "mfa", "auth")).begin_attempt("alice", "127.0.0.1")
    assert len(callee.requests) == 1
