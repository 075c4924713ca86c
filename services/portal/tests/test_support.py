"""The support session's limits on a frozen clock: 8 hours from sign-in, 15 minutes idle."""

import pytest

from services.common.clock import FrozenClock
from services.common.keys import SigningKey, generate_private_pem, jwks
from services.common.tokens import StaticKeys, TokenIssuer, TokenVerifier
from services.portal.support import ACTIVITY_AUDIENCE, SupportActivity, SupportSessionOver

HOUR, MINUTE = 3600, 60


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def activity(clock: FrozenClock) -> SupportActivity:
    key = SigningKey.from_pem(generate_private_pem("ec"))
    return SupportActivity(
        TokenIssuer(key, "portal", clock),
        TokenVerifier(StaticKeys(jwks(key)), {"portal"}, ACTIVITY_AUDIENCE, clock=clock),
        clock,
        max_seconds=8 * HOUR,
        idle_seconds=15 * MINUTE,
    )


async def test_a_busy_support_session_lasts_eight_hours_and_no_more(
    activity: SupportActivity, clock: FrozenClock
) -> None:
    sealed = activity.start("session-1")
    elapsed = 0
    while elapsed + 15 * MINUTE - 1 < 8 * HOUR:
        clock.advance(15 * MINUTE - 1)
        elapsed += 15 * MINUTE - 1
        sealed = await activity.renew("session-1", sealed)
    clock.advance(8 * HOUR - elapsed)
    with pytest.raises(SupportSessionOver, match="8 hours"):
        await activity.renew("session-1", sealed)


async def test_fifteen_idle_minutes_end_it(activity: SupportActivity, clock: FrozenClock) -> None:
    sealed = activity.start("session-1")
    clock.advance(14 * MINUTE)
    sealed = await activity.renew("session-1", sealed)
    clock.advance(15 * MINUTE)
    with pytest.raises(SupportSessionOver, match="idle"):
        await activity.renew("session-1", sealed)


async def test_the_cookie_belongs_to_its_session_only(activity: SupportActivity) -> None:
    sealed = activity.start("session-1")
    with pytest.raises(SupportSessionOver, match="another session"):
        await activity.renew("session-2", sealed)
    with pytest.raises(SupportSessionOver):
        await activity.renew("session-1", sealed[:-4] + "AAAA")
    with pytest.raises(SupportSessionOver):
        await activity.renew("session-1", None)
