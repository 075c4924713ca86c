import pytest

from services.auth.accounts import Accounts, username_key
from services.auth.passwords import Passwords
from services.common.errors import BadRequest, Conflict

from .fakes import FakeAuthStore


class CountingPasswords(Passwords):
    def __init__(self) -> None:
        super().__init__(memory_kib=1024, iterations=1, parallelism=1, concurrency=2)
        self.verified_hashes: list[str] = []

    def _verify(self, password_hash: str, password: str) -> bool:
        self.verified_hashes.append(password_hash)
        return super()._verify(password_hash, password)


@pytest.fixture
def passwords() -> CountingPasswords:
    return CountingPasswords()


@pytest.fixture
def accounts(passwords: CountingPasswords) -> Accounts:
    return Accounts(FakeAuthStore(), passwords)  # type: ignore[arg-type]


def test_names_compare_case_insensitively() -> None:
    assert username_key("  Alice ") == username_key("alice") == username_key("ALICE")
    assert username_key("straße") == username_key("STRASSE")


async def test_the_right_password_signs_in(accounts: Accounts) -> None:
    await accounts.add("Alice", "correct horse")
    result = await accounts.authenticate("alice", "correct horse")
    assert result.user is not None and result.user.username == "Alice"
    assert result.outcome == "ok"


async def test_a_wrong_password_does_not(accounts: Accounts) -> None:
    await accounts.add("alice", "correct horse")
    result = await accounts.authenticate("alice", "wrong horse")
    assert result.user is None and result.outcome == "invalid"
    assert result.known is not None


async def test_an_unknown_user_costs_a_dummy_verify(accounts: Accounts, passwords: CountingPasswords) -> None:
    result = await accounts.authenticate("nobody", "whatever1")
    assert result.user is None and result.known is None
    assert passwords.verified_hashes == [passwords.dummy_hash]


async def test_a_disabled_user_cannot_sign_in(accounts: Accounts) -> None:
    await accounts.add("alice", "correct horse")
    await accounts.set_disabled("alice", True)
    result = await accounts.authenticate("alice", "correct horse")
    assert result.user is None and result.outcome == "disabled"


async def test_passwords_are_stored_as_argon2id(accounts: Accounts) -> None:
    await accounts.add("alice", "correct horse")
    stored = (await accounts.find("alice")).password_hash
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored


async def test_names_are_unique_regardless_of_case(accounts: Accounts) -> None:
    await accounts.add("alice", "correct horse")
    with pytest.raises(Conflict):
        await accounts.add("ALICE", "another pass")


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "semi;colon"])
async def test_bad_names_are_refused(accounts: Accounts, name: str) -> None:
    with pytest.raises(BadRequest):
        await accounts.add(name, "correct horse")


async def test_short_passwords_are_refused(accounts: Accounts) -> None:
    with pytest.raises(BadRequest):
        await accounts.add("alice", "short")


async def test_default_argon2_parameters_follow_owasp() -> None:
    default = Passwords(memory_kib=19456, iterations=2, parallelism=1, concurrency=1)
    assert "$m=19456,t=2,p=1$" in default.dummy_hash
