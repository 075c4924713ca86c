"""Service tokens: signed once and reused until shortly before exp; verified once, and never past exp."""

from typing import Any

import httpx
import jwt
import pytest
from starlette.requests import Request

from services.common.clock import FrozenClock
from services.common.errors import Unauthorized
from services.common.http_client import peer_http_client
from services.common.keys import SigningKey, generate_private_pem, jwks
from services.common.service_client import (
    SERVICE_TOKEN_RENEW_SECONDS,
    SERVICE_TOKEN_TTL_SECONDS,
    CallerCheck,
    ServiceClient,
)
from services.common.tokens import LEEWAY_SECONDS, StaticKeys, TokenIssuer, TokenVerifier

KEY = SigningKey.from_pem(generate_private_pem("ec"))


def bearer(token: str) -> Request:
    return Request({"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())]})


class CountingVerifier(TokenVerifier):
    def __init__(self, clock: FrozenClock) -> None:
        super().__init__(StaticKeys(jwks(KEY)), issuers={"portal"}, audience="session", clock=clock)
        self.verified = 0

    async def verify(self, token: str, token_type: str | None = None) -> dict[str, Any]:
        self.verified += 1
        return await super().verify(token, token_type)


async def tokens_sent(clock: FrozenClock, calls: list[float]) -> list[str]:
    """The Authorization tokens of calls made after the given clock advances."""
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["authorization"].removeprefix("Bearer "))
        return httpx.Response(200, json={})

    async with peer_http_client(httpx.MockTransport(answer)) as http:
        client = ServiceClient(http, TokenIssuer(KEY, "portal", clock), "http://session.test", "session")
        for advance in calls:
            clock.advance(advance)
            await client.call("/internal/x", {})
    return sent


async def test_a_caller_reuses_its_token_until_shortly_before_it_expires() -> None:
    clock = FrozenClock()
    reuse_for = SERVICE_TOKEN_TTL_SECONDS - SERVICE_TOKEN_RENEW_SECONDS
    sent = await tokens_sent(clock, [0, 1, reuse_for - 2, 1, 0])
    assert sent[0] == sent[1] == sent[2]
    assert sent[3] != sent[2] and sent[4] == sent[3]
    claims = jwt.decode(sent[3], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == SERVICE_TOKEN_TTL_SECONDS
    assert jwt.get_unverified_header(sent[3])["typ"] == "service+jwt"


async def test_a_token_is_verified_once_and_passes_until_its_exp_only() -> None:
    clock = FrozenClock()
    verifier = CountingVerifier(clock)
    check = CallerCheck(verifier)
    token = TokenIssuer(KEY, "portal", clock).issue("session", 60, token_type="service+jwt")
    assert [await check(bearer(token)) for _ in range(3)] == ["portal"] * 3
    assert verifier.verified == 1
    clock.advance(60 + LEEWAY_SECONDS)
    assert await check(bearer(token)) == "portal"  # the last second of its leeway
    clock.advance(1)
    with pytest.raises(Unauthorized):
        await check(bearer(token))
    with pytest.raises(Unauthorized):
        await check(bearer(token))


async def test_a_refused_token_is_refused_every_time_and_checks_do_not_share() -> None:
    clock = FrozenClock()
    verifier = CountingVerifier(clock)
    check = CallerCheck(verifier)
    wrong_audience = TokenIssuer(KEY, "portal", clock).issue("auth", 60, token_type="service+jwt")
    step_token = TokenIssuer(KEY, "portal", clock).issue("session", 60)
    for token in (wrong_audience, step_token, wrong_audience):
        with pytest.raises(Unauthorized):
            await check(bearer(token))
    assert verifier.verified == 3
    # What one check let pass, another (e.g. the admin API's) verifies for itself.
    token = TokenIssuer(KEY, "portal", clock).issue("session", 60, token_type="service+jwt")
    await check(bearer(token))
    other = CallerCheck(
        TokenVerifier(StaticKeys(jwks(KEY)), issuers={"admin"}, audience="session", clock=clock)
    )
    with pytest.raises(Unauthorized):
        await other(bearer(token))


async def test_the_type_is_checked_on_every_use_from_the_header_the_verification_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The check reads typ from the header it parsed for the key, not with a second parse.
    monkeypatch.setattr(jwt, "get_unverified_header", None)
    clock = FrozenClock()
    verifier = TokenVerifier(StaticKeys(jwks(KEY)), issuers={"portal"}, audience="session", clock=clock)
    check = CallerCheck(verifier)
    issuer = TokenIssuer(KEY, "portal", clock)
    service_token = issuer.issue("session", 60, token_type="service+jwt")
    assert await check(bearer(service_token)) == "portal"
    # A step token the verifier already let pass (remembered, or signed here) is no service token.
    remembered = issuer.issue("session", 60)
    signed_here = issuer.issue("session", 60)
    await verifier.verify(remembered)
    verifier.remember_signed_here(signed_here)
    for token in (remembered, signed_here, remembered):
        with pytest.raises(Unauthorized):
            await check(bearer(token))
        assert (await verifier.verify(token))["iss"] == "portal"
