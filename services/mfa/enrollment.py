"""The TOTP rules: set-up of a first authenticator, and codes for users who have one.

Set-up is only for users without an authenticator. Were it reachable afterwards, anyone
with a stolen password could bind a second authenticator of their own.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Protocol

from services.common.clock import Clock

from .secret_box import SecretBox
from .store import TotpCredential
from .totp import TotpVerifier

log = logging.getLogger(__name__)


class Outcome(Enum):
    OK = "ok"
    WRONG_CODE = "wrong_code"
    CODE_ALREADY_USED = "code_already_used"
    LOCKED_OUT = "locked_out"
    ALREADY_ENROLLED = "already_enrolled"
    NOT_ENROLLED = "not_enrolled"


@dataclass(frozen=True)
class User:
    id: str
    username: str


@dataclass(frozen=True)
class PendingSetup:
    """What the set-up page shows. The secret is for the user's eyes, never for a log."""

    secret: str
    provisioning_uri: str


class EnrollmentStore(Protocol):
    async def get_credential(self, user_id: str) -> TotpCredential | None: ...

    async def get_or_create_pending(
        self, user_id: str, candidate_ciphertext: bytes, expires_at: datetime, now: datetime
    ) -> bytes: ...

    async def confirm_enrollment(self, user_id: str, secret_ciphertext: bytes, used_step: int) -> bool: ...

    async def start_attempt(
        self, user_id: str, max_failed_attempts: int, now: datetime, lock_until: datetime
    ) -> bool: ...

    async def record_used_step(self, user_id: str, step: int) -> bool: ...


def _moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class Enrollment:
    def __init__(
        self,
        store: EnrollmentStore,
        box: SecretBox,
        totp: TotpVerifier,
        clock: Clock,
        enrollment_ttl_seconds: int = 600,
        max_failed_attempts: int = 10,
        lockout_seconds: int = 900,
    ) -> None:
        self.store = store
        self.box = box
        self.totp = totp
        self.clock = clock
        self.enrollment_ttl_seconds = enrollment_ttl_seconds
        self.max_failed_attempts = max_failed_attempts
        self.lockout_seconds = lockout_seconds

    async def is_enrolled(self, user: User) -> bool:
        return await self.store.get_credential(user.id) is not None

    async def start_or_resume(self, user: User) -> PendingSetup | Outcome:
        """The set-up in progress (same secret until it expires), or ALREADY_ENROLLED."""
        if await self.is_enrolled(user):
            return Outcome.ALREADY_ENROLLED
        secret = await self._pending_secret(user)
        return PendingSetup(secret, self.totp.provisioning_uri(secret, user.username))

    async def confirm(self, user: User, code: str) -> Outcome:
        """Binds the pending authenticator when the code is right."""
        if await self.is_enrolled(user):
            log.warning("totp set-up refused for user_id=%s: already enrolled", user.id)
            return Outcome.ALREADY_ENROLLED
        # Resuming here means an expired set-up is replaced, and the page shows the new QR.
        secret = await self._pending_secret(user)
        step = self.totp.validate(secret, code, self.clock.now())
        if step is None:
            log.info("totp set-up code wrong for user_id=%s", user.id)
            return Outcome.WRONG_CODE
        # Sealed afresh: the stored credential gets its own nonce, and the used step is
        # recorded with it, so the set-up code cannot sign in a second time.
        if not await self.store.confirm_enrollment(user.id, self.box.seal(user.id, secret), step):
            log.warning("totp set-up lost a race for user_id=%s: already enrolled", user.id)
            return Outcome.ALREADY_ENROLLED
        log.info("totp authenticator bound for user_id=%s", user.id)
        return Outcome.OK

    async def verify(self, user: User, code: str) -> Outcome:
        """Checks a code from the user's bound authenticator; each step is good once."""
        credential = await self.store.get_credential(user.id)
        if credential is None:
            return Outcome.NOT_ENROLLED
        now = self.clock.now()
        lock_until = _moment(now + self.lockout_seconds)
        if not await self.store.start_attempt(user.id, self.max_failed_attempts, _moment(now), lock_until):
            log.warning("totp verify refused for user_id=%s: too many wrong codes", user.id)
            return Outcome.LOCKED_OUT
        secret = self.box.open(user.id, credential.secret_ciphertext)
        step = self.totp.validate(secret, code, now)
        if step is None:
            log.info("totp verify failed for user_id=%s", user.id)
            return Outcome.WRONG_CODE
        if not await self.store.record_used_step(user.id, step):
            log.warning("totp verify refused for user_id=%s: code already used", user.id)
            return Outcome.CODE_ALREADY_USED
        log.info("totp verify succeeded for user_id=%s", user.id)
        return Outcome.OK

    async def _pending_secret(self, user: User) -> str:
        now = self.clock.now()
        candidate = self.totp.generate_secret()
        sealed = await self.store.get_or_create_pending(
            user.id,
            self.box.seal(user.id, candidate),
            expires_at=_moment(now + self.enrollment_ttl_seconds),
            now=_moment(now),
        )
        return self.box.open(user.id, sealed)
