import os

import pyotp
import pytest

from services.common.clock import FrozenClock
from services.mfa.audit import Origin
from services.mfa.enrollment import ClockSkew, Enrollment, Locked, Outcome, PendingSetup, User
from services.mfa.secret_box import SecretBox
from services.mfa.totp import TotpVerifier

from .fakes import FakeThrottle, InMemoryStore

ALICE = User("user-alice", "Alice")
MALLORY = User("user-mallory", "mallory")
HERE = Origin("203.0.113.7", "TestBrowser/1.0")
BROWSER = "b" * 64  # a step token's binding


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def throttle() -> FakeThrottle:
    return FakeThrottle(max_failures=3)


@pytest.fixture
def enrollment(store: InMemoryStore, clock: FrozenClock, throttle: FakeThrottle) -> Enrollment:
    return Enrollment(
        store,
        SecretBox(os.urandom(32)),
        TotpVerifier("Orange Business"),
        clock,
        throttle,
        enrollment_ttl_seconds=600,
    )


def account_of(user: User) -> str:
    return user.username.casefold()


async def verify(
    enrollment: Enrollment, user: User, code: str, clear_now: bool = False
) -> Outcome | ClockSkew | Locked:
    """As at sign-in (clear_now=False: the complete step clears the counts), unless told otherwise."""
    return await enrollment.verify(user, account_of(user), code, HERE, clear_now=clear_now)


def code_for(secret: str, clock: FrozenClock, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock.now() + steps * 30)


def wrong_code(secret: str, clock: FrozenClock) -> str:
    right = code_for(secret, clock)
    return f"{(int(right) + 1) % 1_000_000:06d}"


async def setup_for(enrollment: Enrollment, user: User) -> PendingSetup:
    setup = await enrollment.start_or_resume(user, HERE, BROWSER)
    assert isinstance(setup, PendingSetup)
    return setup


async def enrolled(enrollment: Enrollment, clock: FrozenClock, user: User = ALICE) -> str:
    """Binds an authenticator for the user, then moves past the step its code used."""
    setup = await setup_for(enrollment, user)
    assert await enrollment.confirm(user, code_for(setup.secret, clock), HERE, BROWSER) is Outcome.OK
    clock.advance(30)
    return setup.secret


async def test_setup_shows_the_otpauth_uri_of_its_secret(enrollment: Enrollment) -> None:
    setup = await setup_for(enrollment, ALICE)
    assert setup.provisioning_uri.startswith("otpauth://totp/Orange%20Business:Alice?")
    assert f"secret={setup.secret}&" in setup.provisioning_uri


async def test_setup_keeps_the_same_secret_until_it_expires(
    enrollment: Enrollment, clock: FrozenClock
) -> None:
    first = await setup_for(enrollment, ALICE)
    clock.advance(599)
    assert (await setup_for(enrollment, ALICE)).secret == first.secret
    clock.advance(1)
    assert (await setup_for(enrollment, ALICE)).secret != first.secret


async def test_another_browser_gets_a_set_up_of_its_own_and_one_confirm_ends_both(
    enrollment: Enrollment, store: InMemoryStore, clock: FrozenClock
) -> None:
    first = await setup_for(enrollment, ALICE)
    other = await enrollment.start_or_resume(ALICE, HERE, "c" * 64)
    assert isinstance(other, PendingSetup) and other.secret != first.secret
    assert (await setup_for(enrollment, ALICE)).secret == first.secret, "each browser keeps its own"
    # The other browser's secret does not confirm this browser's set-up...
    assert await enrollment.confirm(ALICE, code_for(other.secret, clock), HERE, BROWSER) is Outcome.WRONG_CODE
    assert await enrollment.confirm(ALICE, code_for(first.secret, clock), HERE, BROWSER) is Outcome.OK
    # ...and once one is confirmed, the other set-up is over: its secret signs nobody in.
    assert not store.pending_of(ALICE.id)
    clock.advance(30)
    assert await verify(enrollment, ALICE, code_for(other.secret, clock)) is Outcome.WRONG_CODE


async def test_each_user_gets_their_own_secret(enrollment: Enrollment) -> None:
    assert (await setup_for(enrollment, ALICE)).secret != (await setup_for(enrollment, MALLORY)).secret


async def test_the_secret_is_stored_sealed(enrollment: Enrollment, store: InMemoryStore) -> None:
    setup = await setup_for(enrollment, ALICE)
    assert setup.secret.encode() not in store.pending_of(ALICE.id)[0][0]


async def test_a_wrong_code_does_not_bind_and_keeps_the_secret(
    enrollment: Enrollment, clock: FrozenClock
) -> None:
    setup = await setup_for(enrollment, ALICE)
    assert (
        await enrollment.confirm(ALICE, wrong_code(setup.secret, clock), HERE, BROWSER) is Outcome.WRONG_CODE
    )
    assert not await enrollment.is_enrolled(ALICE)
    assert (await setup_for(enrollment, ALICE)).secret == setup.secret


async def test_a_right_code_binds_the_authenticator(enrollment: Enrollment, clock: FrozenClock) -> None:
    setup = await setup_for(enrollment, ALICE)
    assert await enrollment.confirm(ALICE, code_for(setup.secret, clock), HERE, BROWSER) is Outcome.OK
    assert await enrollment.is_enrolled(ALICE)
    clock.advance(30)
    assert await verify(enrollment, ALICE, code_for(setup.secret, clock)) is Outcome.OK


async def test_a_code_for_an_expired_setup_does_not_bind_and_says_it_expired(
    enrollment: Enrollment, store: InMemoryStore, clock: FrozenClock
) -> None:
    setup = await setup_for(enrollment, ALICE)
    clock.advance(599)
    assert (
        await enrollment.confirm(ALICE, wrong_code(setup.secret, clock), HERE, BROWSER) is Outcome.WRONG_CODE
    )
    clock.advance(1)
    outcome = await enrollment.confirm(ALICE, code_for(setup.secret, clock), HERE, BROWSER)
    assert outcome is Outcome.SETUP_EXPIRED
    assert not await enrollment.is_enrolled(ALICE)
    # No new secret is made behind the customer's back: the start again shows a new QR.
    assert len(store.pending_of(ALICE.id)) == 1
    assert enrollment.box.open(ALICE.id, store.pending_of(ALICE.id)[0][0]) == setup.secret
    assert store.outcomes("enrollment") == ["started", "expired"]


async def test_an_enrolled_user_cannot_start_setup_again(enrollment: Enrollment, clock: FrozenClock) -> None:
    await enrolled(enrollment, clock)
    assert await enrollment.start_or_resume(ALICE, HERE, BROWSER) is Outcome.ALREADY_ENROLLED


async def test_an_enrolled_user_cannot_bind_a_second_authenticator(
    enrollment: Enrollment, store: InMemoryStore, clock: FrozenClock
) -> None:
    secret = await enrolled(enrollment, clock)
    # Refused before any code is looked at, so no new set-up secret is even made.
    assert await enrollment.confirm(ALICE, code_for(secret, clock), HERE, BROWSER) is Outcome.ALREADY_ENROLLED
    assert not store.pending_of(ALICE.id)
    assert enrollment.box.open(ALICE.id, store.credentials[ALICE.id].secret_ciphertext) == secret


async def test_verify_for_a_user_without_authenticator(enrollment: Enrollment) -> None:
    assert await verify(enrollment, ALICE, "123456") is Outcome.NOT_ENROLLED


async def test_verify_refuses_a_wrong_code(enrollment: Enrollment, clock: FrozenClock) -> None:
    secret = await enrolled(enrollment, clock)
    assert await verify(enrollment, ALICE, wrong_code(secret, clock)) is Outcome.WRONG_CODE


async def test_verify_refuses_another_users_code(enrollment: Enrollment, clock: FrozenClock) -> None:
    await enrolled(enrollment, clock, ALICE)
    mallory_secret = await enrolled(enrollment, clock, MALLORY)
    assert await verify(enrollment, ALICE, code_for(mallory_secret, clock)) is Outcome.WRONG_CODE


async def test_a_code_is_accepted_once_per_step(enrollment: Enrollment, clock: FrozenClock) -> None:
    secret = await enrolled(enrollment, clock)
    code = code_for(secret, clock)
    assert await verify(enrollment, ALICE, code) is Outcome.OK
    assert await verify(enrollment, ALICE, code) is Outcome.CODE_ALREADY_USED
    clock.advance(30)
    assert await verify(enrollment, ALICE, code_for(secret, clock)) is Outcome.OK


async def test_an_older_step_is_refused_after_a_newer_one(enrollment: Enrollment, clock: FrozenClock) -> None:
    secret = await enrolled(enrollment, clock)
    assert await verify(enrollment, ALICE, code_for(secret, clock, steps=1)) is Outcome.OK
    assert await verify(enrollment, ALICE, code_for(secret, clock, steps=0)) is Outcome.CODE_ALREADY_USED


async def test_the_setup_code_cannot_be_used_again_to_sign_in(
    enrollment: Enrollment, clock: FrozenClock
) -> None:
    setup = await setup_for(enrollment, ALICE)
    code = code_for(setup.secret, clock)
    assert await enrollment.confirm(ALICE, code, HERE, BROWSER) is Outcome.OK
    assert await verify(enrollment, ALICE, code) is Outcome.CODE_ALREADY_USED


async def test_reset_lets_the_user_set_up_again(
    enrollment: Enrollment, store: InMemoryStore, clock: FrozenClock
) -> None:
    old_secret = await enrolled(enrollment, clock)
    assert await store.delete_user(ALICE.id)
    new_setup = await setup_for(enrollment, ALICE)
    assert new_setup.secret != old_secret


# Throttling is auth's (FakeThrottle stands in for /internal/attempts).


async def test_each_attempt_is_counted_with_account_and_ip_before_the_check(
    enrollment: Enrollment, throttle: FakeThrottle, clock: FrozenClock
) -> None:
    secret = await enrolled(enrollment, clock)
    assert await verify(enrollment, ALICE, wrong_code(secret, clock)) is Outcome.WRONG_CODE
    assert throttle.calls == [("begin", "alice", HERE.ip)]
    assert await verify(enrollment, ALICE, code_for(secret, clock)) is Outcome.OK
    # At sign-in auth is not told of the right code: it clears the counts from the complete step.
    assert throttle.calls[1:] == [("begin", "alice", HERE.ip)]


async def test_a_right_code_outside_sign_in_is_told_to_auth_at_once(
    enrollment: Enrollment, throttle: FakeThrottle, clock: FrozenClock
) -> None:
    secret = await enrolled(enrollment, clock)
    assert await verify(enrollment, ALICE, wrong_code(secret, clock), clear_now=True) is Outcome.WRONG_CODE
    assert throttle.calls == [("begin", "alice", HERE.ip)]
    assert await verify(enrollment, ALICE, code_for(secret, clock), clear_now=True) is Outcome.OK
    assert throttle.calls[1:] == [("begin", "alice", HERE.ip), ("succeeded", "alice", HERE.ip)]


async def test_a_replayed_or_skewed_code_is_not_a_success(
    enrollment: Enrollment, throttle: FakeThrottle, clock: FrozenClock
) -> None:
    secret = await enrolled(enrollment, clock)
    code = code_for(secret, clock)
    assert await verify(enrollment, ALICE, code) is Outcome.OK
    throttle.calls.clear()
    assert await verify(enrollment, ALICE, code) is Outcome.CODE_ALREADY_USED
    assert isinstance(await verify(enrollment, ALICE, code_for(secret, clock, steps=5)), ClockSkew)
    assert [call[0] for call in throttle.calls] == ["begin", "begin"]


async def test_no_attempt_is_counted_for_a_user_without_authenticator(
    enrollment: Enrollment, throttle: FakeThrottle
) -> None:
    assert await verify(enrollment, ALICE, "123456") is Outcome.NOT_ENROLLED
    assert throttle.calls == []


async def test_while_auth_refuses_even_the_right_code_is_not_checked(
    enrollment: Enrollment, throttle: FakeThrottle, store: InMemoryStore, clock: FrozenClock
) -> None:
    secret = await enrolled(enrollment, clock)
    for _ in range(3):
        assert await verify(enrollment, ALICE, wrong_code(secret, clock)) is Outcome.WRONG_CODE
    code = code_for(secret, clock)
    assert await verify(enrollment, ALICE, code, clear_now=True) == Locked(840)
    assert ("succeeded", "alice", HERE.ip) not in throttle.calls
    # The code was never looked at, so its step is still unused once auth lets attempts in.
    used_before = store.credentials[ALICE.id].last_used_step
    throttle.unlock("alice")
    assert await verify(enrollment, ALICE, code) is Outcome.OK
    assert store.credentials[ALICE.id].last_used_step == (used_before or 0) + 1


async def test_a_right_code_told_at_once_clears_the_failure_count(
    enrollment: Enrollment, throttle: FakeThrottle, clock: FrozenClock
) -> None:
    secret = await enrolled(enrollment, clock)
    for _ in range(2):
        await verify(enrollment, ALICE, wrong_code(secret, clock))
    # As for a renewal of recovery codes; at sign-in the complete step clears them (at auth).
    assert await verify(enrollment, ALICE, code_for(secret, clock), clear_now=True) is Outcome.OK
    clock.advance(30)
    for _ in range(2):
        assert await verify(enrollment, ALICE, wrong_code(secret, clock)) is Outcome.WRONG_CODE
    assert await verify(enrollment, ALICE, code_for(secret, clock)) is Outcome.OK


async def test_set_up_codes_are_not_throttled_by_auth(
    enrollment: Enrollment, throttle: FakeThrottle, clock: FrozenClock
) -> None:
    # The set-up secret is on the page the customer sees: there is nothing to guess.
    setup = await setup_for(enrollment, ALICE)
    await enrollment.confirm(ALICE, wrong_code(setup.secret, clock), HERE, BROWSER)
    assert throttle.calls == []


# Clock skew: right for a time within ±10 steps, outside the ±1 window.


@pytest.mark.parametrize(
    ("steps", "seconds", "minutes", "ahead"),
    [
        (2, 60, 1, True),
        (3, 90, 2, True),
        (4, 120, 2, True),
        (10, 300, 5, True),
        (-2, -60, 1, False),
        (-7, -210, 4, False),
    ],
)
async def test_a_code_from_a_skewed_clock_gets_a_hint(
    enrollment: Enrollment, clock: FrozenClock, steps: int, seconds: int, minutes: int, ahead: bool
) -> None:
    secret = await enrolled(enrollment, clock)
    skew = await verify(enrollment, ALICE, code_for(secret, clock, steps=steps))
    assert skew == ClockSkew(seconds)
    assert isinstance(skew, ClockSkew) and (skew.minutes, skew.ahead) == (minutes, ahead)


@pytest.mark.parametrize("steps", [11, -11, 30])
async def test_a_code_further_off_is_just_wrong(
    enrollment: Enrollment, clock: FrozenClock, steps: int
) -> None:
    secret = await enrolled(enrollment, clock)
    assert await verify(enrollment, ALICE, code_for(secret, clock, steps=steps)) is Outcome.WRONG_CODE


async def test_a_code_that_earned_a_hint_never_signs_in_later(
    enrollment: Enrollment, store: InMemoryStore, throttle: FakeThrottle, clock: FrozenClock
) -> None:
    secret = await enrolled(enrollment, clock)
    ahead = code_for(secret, clock, steps=4)
    used = store.credentials[ALICE.id].last_used_step
    assert isinstance(await verify(enrollment, ALICE, ahead), ClockSkew)
    assert store.credentials[ALICE.id].last_used_step == used, "the steps before it stay usable"
    # Once our clock reaches the phone's, the very same code is still refused...
    clock.advance(4 * 30)
    assert await verify(enrollment, ALICE, ahead) is Outcome.WRONG_CODE
    assert store.outcomes("sign_in.otp")[-1] == "hinted"
    # ...while the next step's code signs in, and the refused step is forgotten once past.
    clock.advance(30)
    assert await verify(enrollment, ALICE, code_for(secret, clock)) is Outcome.OK
    throttle.unlock("alice")  # as auth does when it consumes the complete step
    clock.advance(30)
    assert isinstance(await verify(enrollment, ALICE, code_for(secret, clock, steps=5)), ClockSkew)
    assert len(store.credentials[ALICE.id].hinted_steps) == 1


async def test_a_hint_counts_as_a_failed_attempt(
    enrollment: Enrollment, throttle: FakeThrottle, clock: FrozenClock
) -> None:
    secret = await enrolled(enrollment, clock)
    for steps in (2, 3, 4):  # the fake throttle refuses after 3 failures
        assert isinstance(await verify(enrollment, ALICE, code_for(secret, clock, steps=steps)), ClockSkew)
    assert await verify(enrollment, ALICE, code_for(secret, clock)) == Locked(840)
    assert [call[0] for call in throttle.calls] == ["begin"] * 4


async def test_a_skewed_set_up_code_binds_nothing_and_gets_the_hint(
    enrollment: Enrollment, clock: FrozenClock
) -> None:
    setup = await setup_for(enrollment, ALICE)
    assert await enrollment.confirm(
        ALICE, code_for(setup.secret, clock, steps=-6), HERE, BROWSER
    ) == ClockSkew(-180)
    assert not await enrollment.is_enrolled(ALICE)


def test_clock_skew_minutes_are_rounded_and_at_least_one() -> None:
    assert [ClockSkew(s).minutes for s in (30, 60, 89, 90, 149, 150, -300)] == [1, 1, 1, 2, 2, 3, 5]


# Audit: mfa.audit_event rows, never a code or secret.


async def test_sign_in_outcomes_are_audited(
    enrollment: Enrollment, store: InMemoryStore, throttle: FakeThrottle, clock: FrozenClock
) -> None:
    secret = await enrolled(enrollment, clock)
    code = code_for(secret, clock)
    await verify(enrollment, ALICE, wrong_code(secret, clock))
    await verify(enrollment, ALICE, code)
    throttle.unlock("alice")  # as auth does when it consumes the complete step
    await verify(enrollment, ALICE, code)
    await verify(enrollment, ALICE, code_for(secret, clock, steps=3))
    throttle.failures["alice"] = 99
    await verify(enrollment, ALICE, code_for(secret, clock, steps=1))
    assert store.outcomes("sign_in.otp") == ["invalid", "ok", "replayed", "clock_skew", "locked"]
    rows = await store.audit_rows(ALICE.id)
    assert {(row["user_id"], row["username"], row["ip"], row["user_agent"]) for row in rows} == {
        (ALICE.id, ALICE.username, HERE.ip, HERE.user_agent)
    }
    assert [row["at"].timestamp() for row in rows][-1] == clock.now()


async def test_enrollment_is_audited_once_started_and_once_confirmed(
    enrollment: Enrollment, store: InMemoryStore, clock: FrozenClock
) -> None:
    setup = await setup_for(enrollment, ALICE)
    await setup_for(enrollment, ALICE)  # the same set-up, shown again
    await enrollment.confirm(ALICE, wrong_code(setup.secret, clock), HERE, BROWSER)
    assert store.outcomes("enrollment") == ["started"]
    clock.advance(600)  # expired: a new set-up starts
    setup = await setup_for(enrollment, ALICE)
    await enrollment.confirm(ALICE, code_for(setup.secret, clock), HERE, BROWSER)
    assert store.outcomes("enrollment") == ["started", "started", "confirmed"]


async def test_no_audit_row_holds_a_code_or_secret(
    enrollment: Enrollment, store: InMemoryStore, clock: FrozenClock
) -> None:
    setup = await setup_for(enrollment, ALICE)
    codes = [code_for(setup.secret, clock)]
    await enrollment.confirm(ALICE, codes[0], HERE, BROWSER)
    for steps in (1, 3, 0):
        codes.append(code_for(setup.secret, clock, steps=steps))
        await verify(enrollment, ALICE, codes[-1])
    text = repr(store.audit)
    assert len(store.audit) == 5
    for needle in (setup.secret, *codes):
        assert needle not in text
