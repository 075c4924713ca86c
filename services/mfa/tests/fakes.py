"""An in-memory stand-in for MfaStore with the same rules as its SQL."""

from dataclasses import replace
from datetime import datetime

from services.mfa.store import TotpCredential


class InMemoryStore:
    def __init__(self) -> None:
        self.credentials: dict[str, TotpCredential] = {}
        self.failed_attempts: dict[str, int] = {}
        self.pending: dict[str, tuple[bytes, datetime]] = {}
        self.consumed: dict[str, datetime] = {}

    async def get_credential(self, user_id: str) -> TotpCredential | None:
        return self.credentials.get(user_id)

    async def get_or_create_pending(
        self, user_id: str, candidate_ciphertext: bytes, expires_at: datetime, now: datetime
    ) -> bytes:
        existing = self.pending.get(user_id)
        if existing is not None and existing[1] > now:
            return existing[0]
        self.pending[user_id] = (candidate_ciphertext, expires_at)
        return candidate_ciphertext

    async def confirm_enrollment(self, user_id: str, secret_ciphertext: bytes, used_step: int) -> bool:
        if user_id in self.credentials:
            return False
        self.credentials[user_id] = TotpCredential(user_id, secret_ciphertext, used_step, None)
        self.failed_attempts[user_id] = 0
        self.pending.pop(user_id, None)
        return True

    async def start_attempt(
        self, user_id: str, max_failed_attempts: int, now: datetime, lock_until: datetime
    ) -> bool:
        credential = self.credentials.get(user_id)
        if credential is None or (credential.locked_until is not None and credential.locked_until > now):
            return False
        failures = self.failed_attempts.get(user_id, 0) + 1
        self.failed_attempts[user_id] = failures
        if failures >= max_failed_attempts:
            self.credentials[user_id] = replace(credential, locked_until=lock_until)
        return True

    async def record_used_step(self, user_id: str, step: int) -> bool:
        credential = self.credentials.get(user_id)
        if credential is None or (
            credential.last_used_step is not None and credential.last_used_step >= step
        ):
            return False
        self.credentials[user_id] = replace(credential, last_used_step=step, locked_until=None)
        self.failed_attempts[user_id] = 0
        return True

    async def consume_step_token(self, jti: str, expires_at: datetime, now: datetime) -> bool:
        if jti in self.consumed:
            return False
        self.consumed[jti] = expires_at
        return True

    async def delete_user(self, user_id: str) -> bool:
        removed = self.credentials.pop(user_id, None) is not None
        return self.pending.pop(user_id, None) is not None or removed
