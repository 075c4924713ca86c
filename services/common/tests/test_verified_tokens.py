"""A verifier decodes a token once: the same token again passes only while it is live and its key
is still the issuer's; a forged one is checked (and refused) every time."""

from typing import Any

import jwt
import pytest

from services.common import tokens
from services.common.clock import FrozenClock
from services.common.keys import SigningKey, generate_private_pem, jwks
from services.common.tokens import (
    LEEWAY_SECONDS,
    InvalidToken,
    StaticKeys,
    TokenIssuer,
    TokenVerifier,
)

KEY = SigningKey.from_pem(generate_private_pem("ec"))
OTHER_KEY = SigningKey.from_pem(generate_private_pem("ec"))


class SwappableKeys(StaticKeys):
    """The issuer's JWKS, which a test can change (a rotation that withdraws a key)."""

    def publish(self, key: SigningKey) -> None:
        self.keys = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in jwks(key)["keys"]}


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each verified decode (signature and claims checked) the verifiers make."""
    seen: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    return seen


def verifier(clock: FrozenClock, keys: StaticKeys | None = None) -> TokenVerifier:
    return TokenVerifier(keys or StaticKeys(jwks(KEY)), issuers={"auth"}, audience="mfa", clock=clock)


async def test_the_same_token_is_decoded_once_and_gives_the_same_claims(decodes: list[str]) -> None:
    clock = FrozenClock()
    token = TokenIssuer(KEY, "auth", clock).issue("mfa", 60, {"stage": "otp", "authz": {"a": "b"}})
    check = verifier(clock)
    first = await check.verify(token)
    first["stage"] = "changed by a caller"
    second = await check.verify(token)
    assert decodes == [token]
    assert second["stage"] == "otp" and second["authz"] == {"a": "b"}
    assert second["jti"] == first["jti"]


async def test_a_remembered_token_is_refused_past_its_exp(decodes: list[str]) -> None:
    clock = FrozenClock()
    token = TokenIssuer(KEY, "auth", clock).issue("mfa", 60)
    check = verifier(clock)
    await check.verify(token)
    clock.advance(60 + LEEWAY_SECONDS)
    await check.verify(token)
    clock.advance(1)
    with pytest.raises(InvalidToken, match="expired"):
        await check.verify(token)
    with pytest.raises(InvalidToken, match="expired"):
        await check.verify(token)
    assert decodes == [token, token, token]


async def test_a_remembered_token_is_refused_once_its_key_is_withdrawn(decodes: list[str]) -> None:
    clock = FrozenClock()
    keys = SwappableKeys(jwks(KEY))
    token = TokenIssuer(KEY, "auth", clock).issue("mfa", 60)
    check = verifier(clock, keys)
    await check.verify(token)
    keys.publish(OTHER_KEY)
    with pytest.raises(InvalidToken, match="unknown kid"):
        await check.verify(token)
    # The same kid published again is a new key object: checked afresh, then passes.
    keys.publish(KEY)
    await check.verify(token)
    assert decodes == [token, token]


async def test_forged_tokens_are_checked_every_time(decodes: list[str]) -> None:
    clock = FrozenClock()
    genuine = TokenIssuer(KEY, "auth", clock).issue("mfa", 60)
    forged = TokenIssuer(OTHER_KEY, "auth", clock).issue("mfa", 60)
    header, payload, _ = genuine.split(".")
    # The genuine token's header and claims with another token's signature.
    spliced = f"{header}.{payload}.{forged.split('.')[2]}"
    check = verifier(clock)
    await check.verify(genuine)
    for _attempt in range(2):
        with pytest.raises(InvalidToken):
            await check.verify(spliced)
    assert decodes == [genuine, spliced, spliced]


async def test_verifiers_do_not_share_what_they_remember(decodes: list[str]) -> None:
    clock = FrozenClock()
    token = TokenIssuer(KEY, "auth", clock).issue("mfa", 60)
    await verifier(clock).verify(token)
    other_audience = TokenVerifier(StaticKeys(jwks(KEY)), issuers={"auth"}, audience="auth", clock=clock)
    with pytest.raises(InvalidToken, match="InvalidAudience"):
        await other_audience.verify(token)


async def test_what_a_verifier_remembers_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "VERIFIED_TOKENS_MAX", 3)
    clock = FrozenClock()
    issuer = TokenIssuer(KEY, "auth", clock)
    check = verifier(clock)
    short = [issuer.issue("mfa", 1) for _ in range(2)]
    for token in short:
        await check.verify(token)
    clock.advance(1 + LEEWAY_SECONDS + 1)
    live = [issuer.issue("mfa", 60) for _ in range(3)]
    for token in live:
        await check.verify(token)
    # The expired ones made room; a fourth live one empties the memory rather than grow it.
    assert set(check._verified) == set(live)
    await check.verify(issuer.issue("mfa", 60))
    assert len(check._verified) == 1


@pytest.mark.parametrize(
    "token",
    ["", "a", "a.b", "a.b.c.d", "..", "é.é.é", "bnVsbA.e30.", "W10.e30.", "e30.e30.", "eyJ.e30.x"],
)
async def test_a_malformed_token_is_refused_as_invalid(token: str) -> None:
    with pytest.raises(InvalidToken):
        await verifier(FrozenClock()).verify(token)


async def test_junk_the_key_lookup_reads_past_is_still_refused_by_the_full_decode() -> None:
    """The header and claims are read leniently, only to pick the key; the decode checks them."""
    clock = FrozenClock()
    header, payload, signature = TokenIssuer(KEY, "auth", clock).issue("mfa", 60).split(".")
    check = verifier(clock)
    for forged in (f"{header}.{payload[:8]}!{payload[8:]}.{signature}", f"{header}.{payload}==.{signature}"):
        with pytest.raises(InvalidToken):
            await check.verify(forged)
