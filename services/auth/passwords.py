"""argon2id hashing, always in a worker thread so the event loop never stalls."""

import secrets
from functools import partial

import anyio
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    def __init__(self, memory_kib: int, iterations: int, parallelism: int, concurrency: int) -> None:
        self.hasher = PasswordHasher(
            time_cost=iterations, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self.limiter = anyio.CapacityLimiter(concurrency)
        # Unknown users are checked against this, so they cost the same time as known ones.
        self.dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        result: str = await anyio.to_thread.run_sync(self.hasher.hash, password, limiter=self.limiter)
        return result

    async def verify(self, password_hash: str | None, password: str) -> bool:
        check = partial(self._verify, password_hash or self.dummy_hash, password)
        matched: bool = await anyio.to_thread.run_sync(check, limiter=self.limiter)
        return matched and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
