import os

import pytest

from services.mfa.secret_box import SecretBox, SecretBoxError

box = SecretBox(os.urandom(32))


def test_round_trips() -> None:
    sealed = box.seal("user-1", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    assert box.open("user-1", sealed) == "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_the_secret_is_not_readable_in_the_sealed_bytes() -> None:
    assert b"JBSWY3DP" not in box.seal("user-1", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")


def test_each_seal_uses_a_fresh_nonce() -> None:
    assert box.seal("user-1", "SECRET") != box.seal("user-1", "SECRET")


def test_a_ciphertext_moved_to_another_user_does_not_open() -> None:
    sealed = box.seal("victim", "JBSWY3DPEHPK3PXP")
    with pytest.raises(SecretBoxError):
        box.open("attacker", sealed)


def test_a_tampered_ciphertext_does_not_open() -> None:
    sealed = bytearray(box.seal("user-1", "JBSWY3DPEHPK3PXP"))
    sealed[-1] ^= 1
    with pytest.raises(SecretBoxError):
        box.open("user-1", bytes(sealed))


def test_another_key_does_not_open_it() -> None:
    with pytest.raises(SecretBoxError):
        SecretBox(os.urandom(32)).open("user-1", box.seal("user-1", "JBSWY3DPEHPK3PXP"))


def test_refuses_a_key_that_is_not_256_bits() -> None:
    with pytest.raises(ValueError):
        SecretBox(os.urandom(16))
