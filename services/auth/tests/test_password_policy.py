"""The rules for a new password: length, the username, and zxcvbn's judgement of guessability."""

import pytest

from services.auth.password_policy import refusal_of


@pytest.mark.parametrize(
    ("password", "refusal"),
    [
        ("eleven char", "too_short"),  # 11
        ("x" * 1025, "too_long"),
        ("password1234", "common"),  # on every list of the most common
        ("qwertyuiop123", "common"),  # a keyboard walk
        ("iloveyou12345", "common"),
        ("Passw0rd1234", "common"),  # l33t for a common one
        ("monkeymonkey", "common"),  # a repeat
        ("aaaaaaaaaaaaaaaa", "common"),
        ("12345678901234", "common"),
        ("my name is Alice!", "contains_username"),  # whatever the case
        ("xALICEx-and-more-words", "contains_username"),
    ],
)
async def test_a_weak_new_password_is_refused_with_its_reason(password: str, refusal: str) -> None:
    assert await refusal_of(password, "alice") == refusal


@pytest.mark.parametrize(
    "password",
    ["correct horse battery", "a long accessible password", "xk9#Lq2!vzP0", "kq3 vmz8 lp2w" + "x" * 1011],
)
async def test_a_long_unguessable_password_is_accepted(password: str) -> None:
    assert await refusal_of(password, "alice") is None


async def test_a_name_of_two_characters_does_not_refuse_every_password_holding_it() -> None:
    assert await refusal_of("correct horse battery", "or") is None
    assert await refusal_of("correct horse battery", "horse") == "contains_username"
