"""TOTP secrets sealed at rest with AES-256-GCM, each bound to its user."""

import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class SecretBoxError(Exception):
    """The sealed secret was tampered with, sealed under another key, or belongs to another user."""


class SecretBox:
    def __init__(self, key: bytes, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        if len(key) != 32:
            raise ValueError("the secret box needs a 32-byte key")
        self.aead = AESGCM(key)
        self.random_bytes = random_bytes

    def seal(self, user_id: str, secret: str) -> bytes:
        """nonce || ciphertext+tag; the user_id is authenticated, so the row cannot change owner."""
        nonce = self.random_bytes(NONCE_BYTES)
        return nonce + self.aead.encrypt(nonce, secret.encode(), user_id.encode())

    def open(self, user_id: str, sealed: bytes) -> str:
        nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return self.aead.decrypt(nonce, ciphertext, user_id.encode()).decode()
        except (InvalidTag, ValueError) as error:
            raise SecretBoxError(f"sealed TOTP secret of user_id={user_id} did not open") from error
