import os

import pyotp
import pytest

from services.common.clock import FrozenClock
from services.mfa.enrollment import Enrollment, Outcome, PendingSetup, User
from services.mfa.secret_box import SecretBox
from services.mfa.totp import TotpVerifier

from .fakes import InMemoryStore

ALICE = User("user-alice", "alice")
MALLORY = User("user-mallory", "mallory")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def enrollment(store: InMemoryStore, clock: FrozenClock) -> Enrollment:
    return Enrollment(
        store,
        SecretBox(os.urandom(32)),
        TotpVerifier("Orange Business"),
        clock,
        enrollment_ttl_seconds=600,
        max_failed_attempts=3,
        lockout_seconds=900,
    )


def code_for(secret: str, clock: FrozenClock, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock.now() + steps * 30)


def wrong_code(secret: str, clock: FrozenClock) -> str:
    right = code_for(secret, clock)
    return f"{(int(right) + 1) % 1_000_000:06d}"


async def setup_for(enrollment: Enrollment, user: User) -> PendingSetup:
    setup = await enrollment.start_or_resume(user)
    assert isinstance(setup, PendingSetup)
    return setup


async def enrolled(enrollment: Enrollment, clock: FrozenClock, user: User = ALICE) -> str:
    """Binds an authenticator for the user, then moves past the step its code used."""
    setup = await setup_for(enrollment, user)
    assert await enrollment.confirm(user, code_for(setup.secret, clock)) is Outcome.OK
    clock.advance(30)
    return setup.secret


async def test_setup_shows_the_otpauth_uri_of_its_secret(enrollment: Enrollment) -> None:
    setup = await setup_for(enrollment, ALICE)
    assert setup.provisioning_uri.startswith("otpauth://totp/Orange%20Business:alice?")
    assert f"secret={setup.secret}&" in setup.provisioning_uri


async def test_setup_keeps_the_same_secret_until_it_expires(
    enrollment: Enrollment, clock: FrozenClock
) -> None:
    first = await setup_for(enrollment, ALICE)
    clock.advance(599)
    assert (await setup_for(enrollment, ALICE)).secret == first.secret
    clock.advance(1)
    assert (await setup_for(enrollment, ALICE)).secret != first.secret


async def test_each_user_gets_their_own_secret(enrollment: Enrollment) -> None:
    assert (await setup_for(enrollment, ALICE)).secret != (await setup_for(enrollment, MALLORY)).secret


async def test_the_secret_is_stored_sealed(enrollment: Enrollment, store: InMemoryStore) -> None:
    setup = await setup_for(enrollment, ALICE)
    assert setup.secret.encode() not in store.pending[ALICE.id][0]


async def test_a_wrong_code_does_not_bind_and_keeps_the_secret(
    enrollment: Enrollment, clock: FrozenClock
) -> None:
    setup = await setup_for(enrollment, ALICE)
    assert await enrollment.confirm(ALICE, wrong_code(setup.secret, clock)) is Outcome.WRONG_CODE
    assert not await enrollment.is_enrolled(ALICE)
    assert (await setup_for(enrollment, ALICE)).secret == setup.secret


async def test_a_right_code_binds_the_authenticator(enrollment: Enrollment, clock: FrozenClock) -> None:
    setup = await setup_for(enrollment, ALICE)
    assert await enrollment.confirm(ALICE, code_for(setup.secret, clock)) is Outcome.OK
    assert await enrollment.is_enrolled(ALICE)
    clock.advance(30)
    assert await enrollment.verify(ALICE, code_for(setup.secret, clock)) is Outcome.OK


async def test_a_code_for_an_expired_setup_does_not_bind(enrollment: Enrollment, clock: FrozenClock) -> None:
    setup = await setup_for(enrollment, ALICE)
    clock.advance(600)
    assert await enrollment.confirm(ALICE, code_for(setup.secret, clock)) is Outcome.WRONG_CODE
    assert not await enrollment.is_enrolled(ALICE)


async def test_an_enrolled_user_cannot_start_setup_again(enrollment: Enrollment, clock: FrozenClock) -> None:
    await enrolled(enrollment, clock)
    assert await enrollment.start_or_resume(ALICE) is Outcome.ALREADY_ENROLLED


async def test_an_enrolled_user_cannot_bind_a_second_authenticator(
    enrollment: Enrollment, store: InMemoryStore, clock: FrozenClock
) -> None:
    secret = await enrolled(enrollment, clock)
    # Refused before any code is looked at, so no new set-up secret is even made.
    assert await enrollment.confirm(ALICE, code_for(secret, clock)) is Outcome.ALREADY_ENROLLED
    assert ALICE.id not in store.pending
    assert enrollment.box.open(ALICE.id, store.credentials[ALICE.id].secret_ciphertext) == secret


async def test_verify_for_a_user_without_authenticator(enrollment: Enrollment) -> None:
    assert await enrollment.verify(ALICE, "123456") is Outcome.NOT_ENROLLED


async def test_verify_refuses_a_wrong_code(enrollment: Enrollment, clock: FrozenClock) -> None:
    secret = await enrolled(enrollment, clock)
    assert await enrollment.verify(ALICE, wrong_code(secret, clock)) is Outcome.WRONG_CODE


async def test_verify_refuses_another_users_code(enrollment: Enrollment, clock: FrozenClock) -> None:
    await enrolled(enrollment, clock, ALICE)
    mallory_secret = await enrolled(enrollment, clock, MALLORY)
    assert await enrollment.verify(ALICE, code_for(mallory_secret, clock)) is Outcome.WRONG_CODE


async def test_a_code_is_accepted_once_per_step(enrollment: Enrollment, clock: FrozenClock) -> None:
    secret = await enrolled(enrollment, clock)
    code = code_for(secret, clock)
    assert await enrollment.verify(ALICE, code) is Outcome.OK
    assert await enrollment.verify(ALICE, code) is Outcome.CODE_ALREADY_USED
    clock.advance(30)
    assert await enrollment.verify(ALICE, code_for(secret, clock)) is Outcome.OK


async def test_an_older_step_is_refused_after_a_newer_one(enrollment: Enrollment, clock: FrozenClock) -> None:
    secret = await enrolled(enrollment, clock)
    assert await enrollment.verify(ALICE, code_for(secret, clock, steps=1)) is Outcome.OK
    assert await enrollment.verify(ALICE, code_for(secret, clock, steps=0)) is Outcome.CODE_ALREADY_USED


async def test_the_setup_code_cannot_be_used_again_to_sign_in(
    enrollment: Enrollment, clock: FrozenClock
) -> None:
    setup = await setup_for(enrollment, ALICE)
    code = code_for(setup.secret, clock)
    assert await enrollment.confirm(ALICE, code) is Outcome.OK
    assert await enrollment.verify(ALICE, code) is Outcome.CODE_ALREADY_USED


async def test_wrong_codes_pause_verification(enrollment: Enrollment, clock: FrozenClock) -> None:
    secret = await enrolled(enrollment, clock)
    for _ in range(3):
        assert await enrollment.verify(ALICE, wrong_code(secret, clock)) is Outcome.WRONG_CODE
    # Even the right code is refused while paused: a guesser learns nothing.
    assert await enrollment.verify(ALICE, code_for(secret, clock)) is Outcome.LOCKED_OUT
    clock.advance(900)
    assert await enrollment.verify(ALICE, code_for(secret, clock)) is Outcome.OK


async def test_a_right_code_clears_the_failure_count(enrollment: Enrollment, clock: FrozenClock) -> None:
    secret = await enrolled(enrollment, clock)
    for _ in range(2):
        await enrollment.verify(ALICE, wrong_code(secret, clock))
    assert await enrollment.verify(ALICE, code_for(secret, clock)) is Outcome.OK
    clock.advance(30)
    for _ in range(2):
        assert await enrollment.verify(ALICE, wrong_code(secret, clock)) is Outcome.WRONG_CODE
    assert await enrollment.verify(ALICE, code_for(secret, clock)) is Outcome.OK


async def test_reset_lets_the_user_set_up_again(
    enrollment: Enrollment, store: InMemoryStore, clock: FrozenClock
) -> None:
    old_secret = await enrolled(enrollment, clock)
    assert await store.delete_user(ALICE.id)
    new_setup = await setup_for(enrollment, ALICE)
    assert new_setup.secret != old_secret
