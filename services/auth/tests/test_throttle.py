"""The throttle's Lua scripts against the real Redis on 127.0.0.1:6379, under a throwaway prefix."""

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from services.auth.accounts import SignIn
from services.auth.audit import Actor
from services.auth.settings import Settings
from services.auth.sign_in import SignInSteps
from services.auth.store import User
from services.auth.throttle import AttemptKind, Throttle, Verdict
from services.auth.throttle_store import ThrottleStore
from services.contracts.auth import CodeAttempt

IP = "127.0.0.9"


@pytest.fixture
async def client() -> AsyncIterator[redis.Redis]:
    connection = redis.from_url("redis://127.0.0.1:6379/0")
    yield connection
    await connection.aclose()


@pytest.fixture
async def prefix(client: redis.Redis) -> AsyncIterator[str]:
    # In a hash tag already, as the store would make it, so the keys below are the stored ones.
    value = f"{{throttletest-{secrets.token_hex(4)}:}}"
    yield value
    keys = [key async for key in client.scan_iter(match=f"{value}*")]
    if keys:
        await client.delete(*keys)


def make_throttle(client: redis.Redis, prefix: str, tmp_path: Path, **overrides: int) -> Throttle:
    settings = Settings(signing_key_file=tmp_path / "k.pem", oidc_key_file=tmp_path / "o.pem").model_copy(
        update=overrides
    )
    return Throttle(ThrottleStore(client, prefix), settings)


async def test_ten_wrong_passwords_lock_the_account_even_for_the_right_one(
    client: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    throttle = make_throttle(client, prefix, tmp_path)
    verdicts = [await throttle.begin(AttemptKind.PASSWORD, "alice", IP) for _ in range(11)]
    assert all(v.allowed for v in verdicts[:10])
    assert not verdicts[10].allowed and verdicts[10].reason == "locked_now"
    assert verdicts[10].lock_seconds == 60
    # Locked: the next attempt is refused before anything is checked.
    assert not (await throttle.begin(AttemptKind.PASSWORD, "alice", IP)).allowed
    # Another account is not affected.
    assert (await throttle.begin(AttemptKind.PASSWORD, "bob", IP)).allowed


async def test_five_wrong_codes_lock_the_account(client: redis.Redis, prefix: str, tmp_path: Path) -> None:
    throttle = make_throttle(client, prefix, tmp_path)
    verdicts = [await throttle.begin(AttemptKind.OTP, "alice", IP) for _ in range(6)]
    assert [v.allowed for v in verdicts] == [True] * 5 + [False]
    assert not (await throttle.begin(AttemptKind.PASSWORD, "alice", IP)).allowed


async def test_parallel_guesses_all_count(client: redis.Redis, prefix: str, tmp_path: Path) -> None:
    throttle = make_throttle(client, prefix, tmp_path)
    verdicts = await asyncio.gather(*(throttle.begin(AttemptKind.OTP, "alice", IP) for _ in range(40)))
    assert sum(v.allowed for v in verdicts) == 5


async def test_waits_grow_with_each_lock(client: redis.Redis, prefix: str, tmp_path: Path) -> None:
    throttle = make_throttle(client, prefix, tmp_path, lockout_otp_failures=1, lockout_max_seconds=300)
    waits = []
    for _ in range(5):
        await throttle.begin(AttemptKind.OTP, "alice", IP)
        verdict = await throttle.begin(AttemptKind.OTP, "alice", IP)
        waits.append(verdict.lock_seconds)
        # Let the temporary lock pass, as time would.
        await client.delete(*[key async for key in client.scan_iter(match=f"{prefix}lock:*")])
    assert waits == [60, 120, 240, 300, 300]


async def test_a_right_code_forgives_the_account(client: redis.Redis, prefix: str, tmp_path: Path) -> None:
    throttle = make_throttle(client, prefix, tmp_path)
    for _ in range(4):
        await throttle.begin(AttemptKind.OTP, "alice", IP)
    await throttle.succeeded(AttemptKind.OTP, "alice", IP)
    verdicts = [await throttle.begin(AttemptKind.OTP, "alice", IP) for _ in range(5)]
    assert all(v.allowed for v in verdicts)


async def test_a_right_password_does_not_forgive_wrong_codes(
    client: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    throttle = make_throttle(client, prefix, tmp_path)
    for _ in range(5):
        assert (await throttle.begin(AttemptKind.OTP, "alice", IP)).allowed
    await throttle.begin(AttemptKind.PASSWORD, "alice", IP)
    await throttle.succeeded(AttemptKind.PASSWORD, "alice", IP)
    assert not (await throttle.begin(AttemptKind.OTP, "alice", IP)).allowed


async def test_never_more_than_the_consecutive_cap_then_only_unlock_helps(
    client: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    throttle = make_throttle(
        client, prefix, tmp_path, lockout_max_consecutive_failures=12, lockout_password_failures=100
    )
    verdicts = []
    for _ in range(13):
        verdicts.append(await throttle.begin(AttemptKind.PASSWORD, "alice", IP))
        # Someone with a stolen password: each right password forgives only wrong passwords.
        await throttle.succeeded(AttemptKind.PASSWORD, "alice", IP)
    assert sum(v.allowed for v in verdicts) == 12
    assert verdicts[-1].reason == "locked_until_unlock"
    assert await client.ttl(f"{prefix}lock:" + (await _lock_suffix(client, prefix))) == -1
    assert await throttle.unlock("alice")
    assert (await throttle.begin(AttemptKind.PASSWORD, "alice", IP)).allowed


async def _lock_suffix(client: redis.Redis, prefix: str) -> str:
    keys: list[str] = [key.decode() async for key in client.scan_iter(match=f"{prefix}lock:*")]
    assert len(keys) == 1
    return keys[0].removeprefix(f"{prefix}lock:")


async def test_an_address_past_its_limit_is_marked_noisy_once_but_refused_nothing(
    client: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    throttle = make_throttle(client, prefix, tmp_path, lockout_ip_failures=20)
    verdicts = [await throttle.begin(AttemptKind.PASSWORD, f"user{n}", IP) for n in range(25)]
    assert all(v.allowed for v in verdicts), "behind one address may be many customers"
    assert [v.address_noisy_now for v in verdicts] == [False] * 20 + [True] + [False] * 4


async def test_a_known_browser_signs_in_while_unknown_browsers_are_locked_out(
    client: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    throttle = make_throttle(client, prefix, tmp_path)
    for _ in range(10):
        assert (await throttle.begin(AttemptKind.PASSWORD, "alice", "127.0.0.66")).allowed
    refused = await throttle.begin(AttemptKind.PASSWORD, "alice", "127.0.0.66")
    assert (refused.allowed, refused.reason, refused.known_browser) == (False, "locked_now", False)
    assert not (await throttle.begin(AttemptKind.PASSWORD, "alice", IP)).allowed, "every unknown browser"
    known = await throttle.begin(AttemptKind.PASSWORD, "alice", IP, device="d" * 22)
    assert (known.allowed, known.known_browser) == (True, True)
    # The known browser's right code forgives its own counters, not the attacker's lock.
    await throttle.succeeded(AttemptKind.OTP, "alice", IP, device="d" * 22)
    assert not (await throttle.begin(AttemptKind.PASSWORD, "alice", IP)).allowed


async def test_a_known_browser_that_guesses_wrong_is_locked_on_its_own_then_is_unknown(
    client: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    throttle = make_throttle(client, prefix, tmp_path)
    device = "d" * 22
    verdicts = [await throttle.begin(AttemptKind.OTP, "alice", IP, device) for _ in range(6)]
    assert [v.allowed for v in verdicts] == [True] * 5 + [False]
    assert verdicts[-1].known_browser and verdicts[-1].reason == "locked_now"
    # Its own lock makes it an unknown browser, with the unknown browsers' (untouched) counts.
    fallback = await throttle.begin(AttemptKind.OTP, "alice", IP, device)
    assert (fallback.allowed, fallback.known_browser) == (True, False)
    assert (await throttle.begin(AttemptKind.OTP, "alice", IP, "e" * 22)).known_browser, "another device"


async def test_unknown_browsers_keep_the_cap_of_consecutive_failures(
    client: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    throttle = make_throttle(
        client, prefix, tmp_path, lockout_max_consecutive_failures=12, lockout_password_failures=100
    )
    for _ in range(12):
        assert (await throttle.begin(AttemptKind.PASSWORD, "alice", IP)).allowed
    assert (await throttle.begin(AttemptKind.PASSWORD, "alice", IP)).reason == "locked_until_unlock"
    assert not (await throttle.begin(AttemptKind.PASSWORD, "alice", "127.0.0.77")).allowed
    assert (await throttle.begin(AttemptKind.PASSWORD, "alice", IP, "d" * 22)).allowed


async def test_unlock_lifts_a_temporary_lock(client: redis.Redis, prefix: str, tmp_path: Path) -> None:
    throttle = make_throttle(client, prefix, tmp_path)
    for _ in range(6):
        await throttle.begin(AttemptKind.OTP, "alice", IP)
    assert await throttle.unlock("alice")
    assert (await throttle.begin(AttemptKind.OTP, "alice", IP)).allowed
    assert not await throttle.unlock("bob")


async def test_a_completed_sign_in_goes_on_when_its_counts_cannot_be_cleared(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A Redis that does not answer: the sign-in goes on, its failure counts stay, and it says so.
    gone = redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        steps = SignInSteps(None, make_throttle(gone, "{gone:}", tmp_path), None)  # type: ignore[arg-type]
        accepted = CodeAttempt(kind="otp", account="alice", ip=IP)
        await steps.code_step_completed(accepted)
        assert "could not clear the failure counts" in caplog.text
        with pytest.raises(redis.ConnectionError):
            await steps.code_accepted("alice", Actor(ip=IP, user_agent=""))  # mfa's call is told
    finally:
        await gone.aclose()


class _RedisGoneAfterBegin:
    """A throttle whose Redis answers the attempt's count, then goes away before its clearing."""

    def __init__(self) -> None:
        self.cleared: list[AttemptKind] = []

    async def begin(self, kind: AttemptKind, account: str, ip: str, device: str | None = None) -> Verdict:
        return Verdict(allowed=True, reason="ok")

    async def succeeded(self, kind: AttemptKind, account: str, ip: str, device: str | None = None) -> None:
        self.cleared.append(kind)
        raise redis.ConnectionError("Redis went away")


class _RightPassword:
    def __init__(self, user: User) -> None:
        self.user = user

    async def authenticate(self, login_name: str, password: str) -> SignIn:
        return SignIn(user=self.user, known=self.user, outcome="ok")


class _ConsumingAudit:
    def __init__(self) -> None:
        self.consumed: list[str] = []

    async def record_consuming(
        self, step: object, event: str, outcome: str, actor: Actor, **fields: object
    ) -> bool:
        self.consumed.append(event)
        return True


async def test_a_right_password_goes_on_when_its_counts_cannot_be_cleared(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The step is used up before the counts are cleared: a 503 then would send the customer's
    # try again to a spent step ("This sign-in has expired"), as the soak once saw.
    user = User(id=uuid.uuid4(), username="alice", password_hash="", disabled=False)
    throttle, audit = _RedisGoneAfterBegin(), _ConsumingAudit()
    steps = SignInSteps(_RightPassword(user), throttle, audit)  # type: ignore[arg-type]
    signed_in = await steps.check_password("alice", "right", Actor(ip=IP, user_agent=""), object())  # type: ignore[arg-type]
    assert signed_in == user
    assert audit.consumed == ["sign_in.password"] and throttle.cleared == [AttemptKind.PASSWORD]
    assert "could not clear the failure counts (password)" in caplog.text
