import pytest

from services.auth.login_flow import LoginFlow
from services.common.clock import FrozenClock
from services.common.keys import SigningKey, generate_private_pem, jwks
from services.common.step_tokens import ConsumedStepTokens, StepExpired
from services.common.tests.jwt_decodes import count_decodes
from services.common.tokens import PeerKeys, StaticKeys, TokenIssuer, TokenVerifier

from .fakes import FakeAuthStore

AUTHZ = {
    "client_id": "portal",
    "redirect_uri": "https://app/cb",
    "state": "s",
    "nonce": "n",
    "code_challenge": "c" * 43,
    "scope": "openid",
    "prompt": "",
}


@pytest.fixture
def keys() -> dict[str, SigningKey]:
    return {name: SigningKey.from_pem(generate_private_pem("ec")) for name in ("auth", "mfa", "evil")}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def flow(keys: dict[str, SigningKey], clock: FrozenClock) -> LoginFlow:
    verifier = TokenVerifier(
        PeerKeys({"auth": StaticKeys(jwks(keys["auth"])), "mfa": StaticKeys(jwks(keys["mfa"]))}),
        issuers={"auth", "mfa"},
        audience="auth",
        clock=clock,
    )
    consumed = ConsumedStepTokens(FakeAuthStore(), clock)
    return LoginFlow(TokenIssuer(keys["auth"], "auth", clock), verifier, consumed, 600)


async def test_a_step_token_reads_back_in_the_same_browser(flow: LoginFlow) -> None:
    token = flow.issue("password", "browser-1", AUTHZ, login_name="alice")
    step = await flow.read(token, "browser-1", {"password"})
    assert step.stage == "password"
    assert step.claims["login_name"] == "alice"
    assert step.authz["client_id"] == "portal"


async def test_a_step_token_from_another_browser_is_refused(flow: LoginFlow) -> None:
    token = flow.issue("password", "browser-1", AUTHZ, login_name="alice")
    with pytest.raises(StepExpired):
        await flow.read(token, "browser-2", {"password"})


async def test_a_later_stage_cannot_be_reached_with_an_earlier_token(flow: LoginFlow) -> None:
    token = flow.issue("username", "browser-1", AUTHZ)
    with pytest.raises(StepExpired):
        await flow.read(token, "browser-1", {"complete"})


async def test_auth_cannot_mint_the_complete_stage_only_mfa_can(
    flow: LoginFlow, keys: dict[str, SigningKey], clock: FrozenClock
) -> None:
    forged = TokenIssuer(keys["auth"], "auth", clock).issue(
        "auth", 600, {"stage": "complete", "bnd": "b", "authz": AUTHZ, "sub": "x"}
    )
    with pytest.raises(StepExpired):
        await flow.read(forged, "b", {"complete"})
    genuine = TokenIssuer(keys["mfa"], "mfa", clock).issue(
        "auth", 600, {"stage": "complete", "bnd": "b", "authz": AUTHZ, "sub": "x"}
    )
    assert (await flow.read(genuine, "b", {"complete"})).stage == "complete"


async def test_a_token_signed_by_an_unknown_key_is_refused(
    flow: LoginFlow, keys: dict[str, SigningKey], clock: FrozenClock
) -> None:
    forged = TokenIssuer(keys["evil"], "mfa", clock).issue(
        "auth", 600, {"stage": "complete", "bnd": "b", "authz": AUTHZ}
    )
    with pytest.raises(StepExpired):
        await flow.read(forged, "b", {"complete"})


async def test_a_step_token_expires(flow: LoginFlow, clock: FrozenClock) -> None:
    token = flow.issue("username", "b", AUTHZ)
    clock.advance(600 + 10)
    with pytest.raises(StepExpired):
        await flow.read(token, "b", {"username"})


async def test_a_step_token_is_consumed_once(flow: LoginFlow) -> None:
    step = await flow.read(flow.issue("username", "b", AUTHZ), "b", {"username"})
    await flow.consume(step)
    with pytest.raises(StepExpired):
        await flow.consume(step)


async def test_a_missing_token_is_an_expired_sign_in(flow: LoginFlow) -> None:
    with pytest.raises(StepExpired):
        await flow.read(None, "b", {"username"})


async def test_a_step_signed_here_skips_only_the_signature_check(
    flow: LoginFlow, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read back from this process's memory, the step still meets every check of the step."""
    decodes = count_decodes(monkeypatch)
    token = flow.issue("username", "browser-1", AUTHZ)
    step = await flow.read(token, "browser-1", {"username"})
    assert decodes == [] and step.authz == AUTHZ
    with pytest.raises(StepExpired, match="another browser"):
        await flow.read(token, "browser-2", {"username"})
    with pytest.raises(StepExpired, match="stage"):
        await flow.read(token, "browser-1", {"password"})
    await flow.consume(step)
    with pytest.raises(StepExpired, match="replayed"):
        await flow.consume(await flow.read(token, "browser-1", {"username"}))
    assert decodes == []
    clock.advance(600 + 10)
    with pytest.raises(StepExpired, match="expired"):
        await flow.read(token, "browser-1", {"username"})
    # The step for mfa (aud mfa) is not kept: auth would refuse it anyway.
    flow.issue("otp", "browser-1", AUTHZ, audience="mfa", sub="x")
    assert list(flow.verifier._signed_here) == []
