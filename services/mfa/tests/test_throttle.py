"""mfa asks auth before each code (POST /internal/attempts/begin) and tells it of a right one."""

import json
from typing import Any

import httpx
import jwt
import pytest

from services.common.clock import FrozenClock
from services.common.errors import DependencyUnavailable
from services.common.http_client import peer_http_client
from services.common.keys import SigningKey, generate_private_pem
from services.common.service_client import ServiceClient
from services.common.tokens import TokenIssuer
from services.contracts.auth import AttemptDecision, AuthInternalClient
from services.mfa.throttle import AuthThrottle

KEY = SigningKey.from_pem(generate_private_pem("ec"))
clock = FrozenClock()


def throttle_answering(status: int, body: Any, seen: list[httpx.Request]) -> AuthThrottle:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    http = peer_http_client(httpx.MockTransport(answer))
    return AuthThrottle(
        AuthInternalClient(ServiceClient(http, TokenIssuer(KEY, "mfa", clock), "http://auth.test/", "auth"))
    )


async def test_admit_asks_auth_with_a_service_token() -> None:
    seen: list[httpx.Request] = []
    assert await throttle_answering(200, {"allowed": True}, seen).admit(
        "alice", "203.0.113.9"
    ) == AttemptDecision(allowed=True)
    [request] = seen
    assert str(request.url) == "http://auth.test/internal/attempts/begin"
    assert json.loads(request.content) == {"kind": "otp", "account": "alice", "ip": "203.0.113.9"}
    token = request.headers["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(
        token,
        KEY.private_key.public_key(),
        algorithms=["ES256"],
        audience="auth",
        options={"verify_exp": False},
    )
    assert claims["iss"] == "mfa"


async def test_admit_says_no_when_auth_says_no() -> None:
    assert await throttle_answering(200, {"allowed": False}, []).admit("alice", "ip") == AttemptDecision(
        allowed=False
    )
    locked = await throttle_answering(200, {"allowed": False, "locked_seconds": 840}, []).admit("alice", "ip")
    assert locked == AttemptDecision(allowed=False, locked_seconds=840)


@pytest.mark.parametrize("body", [{"allowed": "yes"}, {"allowed": 1}, {"allowed": None}, {}])
async def test_admit_allows_only_a_plain_true(body: Any) -> None:
    # Anything but a JSON true or false is outside the contract: no code is checked (a calm 503).
    with pytest.raises(DependencyUnavailable):
        await throttle_answering(200, body, []).admit("alice", "ip")


@pytest.mark.parametrize("status", [404, 401, 500])
async def test_admit_without_an_answer_refuses_to_go_on(status: int) -> None:
    with pytest.raises(DependencyUnavailable):
        await throttle_answering(status, {"allowed": True}, []).admit("alice", "ip")


async def test_succeeded_tells_auth() -> None:
    seen: list[httpx.Request] = []
    await throttle_answering(200, {}, seen).succeeded("alice", "203.0.113.9")
    assert str(seen[0].url) == "http://auth.test/internal/attempts/succeeded"
    assert json.loads(seen[0].content) == {"kind": "otp", "account": "alice", "ip": "203.0.113.9"}


@pytest.mark.parametrize("status", [404, 503])
async def test_a_right_code_still_signs_in_when_auth_cannot_be_told(status: int) -> None:
    await throttle_answering(status, {}, []).succeeded("alice", "ip")  # logs, does not raise


async def test_admit_refuses_to_go_on_without_a_json_object() -> None:
    with pytest.raises(DependencyUnavailable):
        await throttle_answering(200, [], []).admit("alice", "ip")
