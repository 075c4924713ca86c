"""A verifier decodes a token once: the same token again passes only while it is live and its key
is still the issuer's; a forged one is checked (and refused) every time."""

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

from .jwt_decodes import count_decodes

KEY = SigningKey.from_pem(generate_private_pem("ec"))
OTHER_KEY = SigningKey.from_pem(generate_private_pem("ec"))


class SwappableKeys(StaticKeys):
    """The issuer's JWKS, which a test can change (a rotation that withdraws a key)."""

    def publish(self, key: SigningKey) -> None:
        self.keys = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in jwks(key)["keys"]}


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each verified decode (signature and claims checked) the verifiers make."""
    return count_decodes(monkeypatch)


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


# Tokens this process signed itself (remember_signed_here): only the signature check is skipped.


def signed_here(clock: FrozenClock, check: TokenVerifier, ttl: int = 60) -> str:
    token = TokenIssuer(KEY, "auth", clock).issue("mfa", ttl, {"stage": "otp", "bnd": "b"})
    check.remember_signed_here(token)
    return token


def one_char_changed(token: str, at: int) -> str:
    swapped = "B" if token[at] != "B" else "C"
    return token[:at] + swapped + token[at + 1 :]


async def test_a_token_signed_here_is_read_without_a_decode_and_gives_its_claims(
    decodes: list[str],
) -> None:
    clock = FrozenClock()
    check = verifier(clock)
    token = signed_here(clock, check)
    first = await check.verify(token)
    first["stage"] = "changed by a caller"
    second = await check.verify(token)
    assert decodes == []
    assert second == jwt.decode(token, options={"verify_signature": False})


async def test_a_token_one_character_off_a_token_signed_here_is_verified_and_refused(
    decodes: list[str],
) -> None:
    clock = FrozenClock()
    check = verifier(clock)
    token = signed_here(clock, check)
    header_end, payload_end = token.index("."), token.rindex(".")
    # In the header, the claims and the signature (not at a segment's last character, whose
    # low bits base64 may ignore), and one more character at the end.
    in_header, in_claims, in_signature = (
        one_char_changed(token, at)
        for at in (header_end // 2, (header_end + payload_end) // 2, len(token) - 10)
    )
    for forged in (in_header, in_claims, in_signature, token + "A"):
        with pytest.raises(InvalidToken):
            await check.verify(forged)
    # With its header and claims intact, the signature is checked (and fails); a changed header
    # or claims are refused before that (no such key, not JSON) or by it.
    assert in_header not in decodes
    assert decodes[-2:] == [in_signature, token + "A"]
    # The genuine one is still remembered, and still passes without a decode.
    count = len(decodes)
    await check.verify(token)
    assert len(decodes) == count


async def test_a_token_signed_here_is_not_remembered_past_its_exp(decodes: list[str]) -> None:
    clock = FrozenClock()
    check = verifier(clock)
    token = signed_here(clock, check, ttl=60)
    clock.advance(59)
    await check.verify(token)
    assert decodes == []
    # At exp it is forgotten: what follows is a full verification, with its usual leeway...
    clock.advance(1)
    await check.verify(token)
    assert decodes == [token] and token not in check._signed_here
    # ...which refuses it past that.
    clock.advance(LEEWAY_SECONDS + 1)
    with pytest.raises(InvalidToken, match="expired"):
        await check.verify(token)


async def test_a_token_signed_here_for_another_audience_or_issuer_is_not_kept(decodes: list[str]) -> None:
    clock = FrozenClock()
    check = verifier(clock)
    for audience, issuer in (("auth", "auth"), ("mfa", "mfa")):
        token = TokenIssuer(KEY, issuer, clock).issue(audience, 60)
        check.remember_signed_here(token)
        with pytest.raises(InvalidToken):
            await check.verify(token)
    assert check._signed_here == {}


async def test_a_token_signed_here_is_refused_once_its_key_is_withdrawn(decodes: list[str]) -> None:
    clock = FrozenClock()
    keys = SwappableKeys(jwks(KEY))
    check = verifier(clock, keys)
    token = signed_here(clock, check)
    keys.publish(OTHER_KEY)
    with pytest.raises(InvalidToken, match="unknown kid"):
        await check.verify(token)
    assert token not in check._signed_here


async def test_what_a_verifier_remembers_of_its_own_tokens_is_bounded(
    monkeypatch: pytest.MonkeyPatch, decodes: list[str]
) -> None:
    monkeypatch.setattr(tokens, "SIGNED_HERE_MAX", 3)
    clock = FrozenClock()
    check = verifier(clock)
    short = signed_here(clock, check, ttl=1)
    clock.advance(1)
    # The expired one goes first; then the oldest, one for each new one.
    signed = [signed_here(clock, check) for _ in range(5)]
    assert list(check._signed_here) == signed[2:]
    for token in signed:
        await check.verify(token)
    assert decodes == signed[:2]
    clock.advance(LEEWAY_SECONDS + 1)
    with pytest.raises(InvalidToken, match="expired"):
        await check.verify(short)
