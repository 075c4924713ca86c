"""Recovery codes: ten single-use codes that stand in for the phone once each.

A code is 12 symbols of a 31-symbol alphabet with no look-alikes (no 0/O, 1/I/L): 59 bits from
`secrets`, shown as XXXX-XXXX-XXXX. Only an HMAC-SHA-256 of each is stored, keyed with a secret
derived from the encryption key (so a copy of the database alone cannot test guesses, and a code
is worth nothing on another user's row). HMAC and not argon2: the codes are random, not chosen,
so a slow hash buys nothing, and a sign-in checks one code with one indexed UPDATE.

Right after the first set-up the codes are shown once. Until the customer ticks "I have saved
these codes" they are kept for that display only, sealed with the secret box, bound to the
sign-in step that made them, and gone when the step goes on or expires.
"""

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from services.common.clock import Clock

from .audit import (
    RECOVERY_CODE_FAILED,
    RECOVERY_CODE_USED,
    RECOVERY_CODES_CREATED,
    AuditStore,
    AuditTrail,
    Origin,
)
from .enrollment import User
from .secret_box import SecretBox
from .throttle import SignInThrottle

log = logging.getLogger(__name__)

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
GROUP_LENGTH = 4
GROUPS = 3
CODE_LENGTH = GROUP_LENGTH * GROUPS
CODES_PER_SET = 10
# From this many left, the customer is told to make new ones.
FEW_LEFT = 2


def new_code(choice: Callable[[str], str] = secrets.choice) -> str:
    """A normalised code: CODE_LENGTH symbols, each drawn on its own from ALPHABET."""
    return "".join(choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalised(typed: str) -> str | None:
    """The code as stored: upper case, without the dashes and spaces; None if it cannot be one."""
    code = "".join(typed.split()).replace("-", "").upper()
    if len(code) != CODE_LENGTH or not all(symbol in ALPHABET for symbol in code):
        return None
    return code


def shown(code: str) -> str:
    """A normalised code in the groups the customer was shown."""
    return "-".join(code[i : i + GROUP_LENGTH] for i in range(0, len(code), GROUP_LENGTH))


class RecoveryCodeHasher:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the recovery code key needs at least 32 bytes")
        self.key = key

    def digest(self, user_id: str, code: str) -> bytes:
        """Of the normalised code, bound to its user."""
        return hmac.new(self.key, f"{user_id}\x00{code}".encode(), hashlib.sha256).digest()


def recovery_code_key(encryption_key: bytes) -> bytes:
    """Derived from the key that already seals the TOTP secrets: they live and rotate together,
    and there is no further secret to mount."""
    return hmac.new(encryption_key, b"mfa recovery code hmac v1", hashlib.sha256).digest()


class RecoveryCodeStore(AuditStore, Protocol):
    async def replace_recovery_codes(self, user_id: str, digests: list[bytes], now: datetime) -> None: ...

    async def use_recovery_code(self, user_id: str, digest: bytes, now: datetime) -> int | None: ...

    async def recovery_codes_left(self, user_id: str) -> int: ...

    async def hold_recovery_display(
        self, user_id: str, step_jti: str, sealed: bytes, expires_at: datetime, now: datetime
    ) -> None: ...

    async def end_recovery_display(self, user_id: str, step_jti: str, now: datetime) -> bool: ...


@dataclass(frozen=True)
class RecoverySignIn:
    """ok: the code was good and is spent now; left: how many unused codes remain.
    locked_seconds: auth refused the attempt unchecked (as enrollment.Locked: -1 until an unlock,
    0 if auth did not say); None when the code was checked."""

    ok: bool
    left: int = 0
    locked_seconds: int | None = None


def _moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class RecoveryCodes:
    def __init__(
        self,
        store: RecoveryCodeStore,
        hasher: RecoveryCodeHasher,
        box: SecretBox,
        clock: Clock,
        throttle: SignInThrottle,
        choice: Callable[[str], str] = secrets.choice,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.box = box
        self.clock = clock
        self.throttle = throttle
        self.choice = choice
        self.audit = AuditTrail(store, clock)

    async def issue(self, user: User, origin: Origin, *, why: str) -> list[str]:
        """A new set, replacing any old one; `why` (enrollment, renewed) goes into the audit row."""
        codes = [new_code(self.choice) for _ in range(CODES_PER_SET)]
        digests = [self.hasher.digest(user.id, code) for code in codes]
        await self.store.replace_recovery_codes(user.id, digests, _moment(self.clock.now()))
        log.info("recovery codes issued for user_id=%s (%s)", user.id, why)
        await self.audit.record(
            RECOVERY_CODES_CREATED, why, user_id=user.id, username=user.username, origin=origin
        )
        return [shown(code) for code in codes]

    async def hold_for_display(self, user: User, step_jti: str, codes: list[str], until: int) -> None:
        """Sealed, for the display of this sign-in step only, until the step's own expiry."""
        sealed = self.box.seal(self._display_owner(user, step_jti), "\n".join(codes))
        now = self.clock.now()
        await self.store.hold_recovery_display(user.id, step_jti, sealed, _moment(until), _moment(now))

    def displayed(self, user: User, step_jti: str, sealed: bytes | None) -> list[str] | None:
        """The codes this step is to show, from the sealed display its step's SELECT read
        (StepRecords.recovery_display); None once the customer went on (or it expired)."""
        if sealed is None:
            return None
        return self.box.open(self._display_owner(user, step_jti), sealed).split("\n")

    async def end_display(self, user: User, step_jti: str) -> bool:
        """The customer saved them: never shown again. False if there was no display to end."""
        return await self.store.end_recovery_display(user.id, step_jti, _moment(self.clock.now()))

    async def left(self, user_id: str) -> int:
        return await self.store.recovery_codes_left(user_id)

    async def sign_in(
        self, user: User, account: str, typed: str, origin: Origin, device: str | None = None
    ) -> RecoverySignIn:
        """Spends the code if it is one of the user's unused ones. Counted by auth as a code attempt,
        so wrong recovery codes and wrong TOTP codes share one lockout. A right one is not told to
        auth here: the complete step that follows it clears the failure counts (LoginSteps)."""
        decision = await self.throttle.admit(account, origin.ip, device)
        if not decision.allowed:
            log.warning("recovery code refused for user_id=%s: sign-in locked by auth", user.id)
            await self._record(RECOVERY_CODE_FAILED, "locked", user, origin)
            return RecoverySignIn(ok=False, locked_seconds=decision.locked_seconds or 0)
        code = normalised(typed)
        left = None
        if code is not None:
            # One UPDATE ... WHERE used_at IS NULL: two sign-ins racing with one code get it once.
            left = await self.store.use_recovery_code(
                user.id, self.hasher.digest(user.id, code), _moment(self.clock.now())
            )
        if left is None:
            log.info("recovery code wrong for user_id=%s", user.id)
            await self._record(RECOVERY_CODE_FAILED, "invalid", user, origin)
            return RecoverySignIn(ok=False)
        log.info("recovery code used for user_id=%s; %d left", user.id, left)
        await self._record(RECOVERY_CODE_USED, "ok", user, origin)
        return RecoverySignIn(ok=True, left=left)

    @staticmethod
    def _display_owner(user: User, step_jti: str) -> str:
        # The associated data: a sealed display opens only for its user and its step.
        return f"{user.id}\x00recovery-display\x00{step_jti}"

    async def _record(self, event: str, outcome: str, user: User, origin: Origin) -> None:
        await self.audit.record(event, outcome, user_id=user.id, username=user.username, origin=origin)
