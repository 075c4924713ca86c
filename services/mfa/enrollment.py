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

from .audit import ENROLLMENT, SIGN_IN_OTP, AuditStore, AuditTrail, Origin
from .secret_box import SecretBox
from .store import AuditEvent, StepRecords, TotpCredential, UsedStep
from .throttle import SignInThrottle
from .totp import TotpVerifier

log = logging.getLogger(__name__)


class Outcome(Enum):
    OK = "ok"
    WRONG_CODE = "wrong_code"
    CODE_ALREADY_USED = "code_already_used"
    ALREADY_ENROLLED = "already_enrolled"
    # The set-up this browser was shown has expired: its QR is no good any more.
    SETUP_EXPIRED = "setup_expired"
    NOT_ENROLLED = "not_enrolled"
    # A right code, but the sign-in step went on meanwhile (another request consumed its token).
    STEP_REPLAYED = "step_replayed"


@dataclass(frozen=True)
class ClockSkew:
    """The code is right for a time the phone's clock is at, but ours is not: nothing accepted."""

    seconds: int  # > 0: the phone is ahead of us; < 0: behind

    @property
    def minutes(self) -> int:
        """Rounded to the nearest minute, at least 1 (half a minute rounds up)."""
        return max(1, (abs(self.seconds) + 30) // 60)

    @property
    def ahead(self) -> bool:
        return self.seconds > 0


@dataclass(frozen=True)
class Locked:
    """auth refused the attempt unchecked: the seconds its lock has left, -1 until an unlock,
    0 if auth did not say. Told to the customer: only someone with the password gets here."""

    seconds: int


@dataclass(frozen=True)
class User:
    id: str
    username: str


@dataclass(frozen=True)
class CodeStep:
    """The sign-in step a code is checked for: the authenticator as its one SELECT read it, and
    its step token (jti, kept until), which a right code consumes in the statement that records
    its TOTP step."""

    credential: TotpCredential | None
    token: tuple[str, datetime]


@dataclass(frozen=True)
class PendingSetup:
    """What the set-up page shows. The secret is for the user's eyes, never for a log."""

    secret: str
    provisioning_uri: str


class EnrollmentStore(AuditStore, Protocol):
    async def get_credential(self, user_id: str) -> TotpCredential | None: ...

    async def get_or_create_pending(
        self, user_id: str, browser: str, candidate_ciphertext: bytes, expires_at: datetime, now: datetime
    ) -> bytes: ...

    async def live_pending(self, user_id: str, browser: str, now: datetime) -> bytes | None: ...

    async def confirm_enrollment(self, user_id: str, secret_ciphertext: bytes, used_step: int) -> bool: ...

    async def record_used_step(
        self,
        user_id: str,
        step: int,
        audit: AuditEvent,
        *,
        refused_outcome: str,
        step_token: tuple[str, datetime] | None,
        now: datetime,
    ) -> UsedStep: ...

    async def refuse_step(self, user_id: str, step: int, oldest_kept: int) -> None: ...


def _moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class Enrollment:
    def __init__(
        self,
        store: EnrollmentStore,
        box: SecretBox,
        totp: TotpVerifier,
        clock: Clock,
        throttle: SignInThrottle,
        enrollment_ttl_seconds: int = 600,
    ) -> None:
        self.store = store
        self.box = box
        self.totp = totp
        self.clock = clock
        self.throttle = throttle
        self.audit = AuditTrail(store, clock)
        self.enrollment_ttl_seconds = enrollment_ttl_seconds

    async def is_enrolled(self, user: User) -> bool:
        return await self.store.get_credential(user.id) is not None

    async def start_or_resume(
        self, user: User, origin: Origin, browser: str, records: StepRecords | None = None
    ) -> PendingSetup | Outcome:
        """This browser's set-up in progress (same secret until it expires), or ALREADY_ENROLLED.

        `browser` is the step token's binding: another browser with the password gets a set-up
        of its own, so a secret is only ever shown to the browser that will confirm it.
        records: what the step's SELECT read just now (LoginSteps.read); None reads it afresh.
        """
        if records is not None:
            enrolled, pending = records.credential is not None, records.pending_setup
        else:
            enrolled, pending = await self.is_enrolled(user), None
        if enrolled:
            return Outcome.ALREADY_ENROLLED
        if pending is not None:
            secret = self.box.open(user.id, pending)
        else:
            secret = await self._pending_secret(user, origin, browser)
        return PendingSetup(secret, self.totp.provisioning_uri(secret, user.username))

    async def confirm(self, user: User, code: str, origin: Origin, browser: str) -> Outcome | ClockSkew:
        """Binds this browser's pending authenticator when the code is right; ends every other set-up."""
        if await self.is_enrolled(user):
            log.warning("totp set-up refused for user_id=%s: already enrolled", user.id)
            return Outcome.ALREADY_ENROLLED
        # No new set-up here: a code typed from an expired QR would only meet a secret the
        # customer never saw. They are told it expired, and start again (a new QR).
        sealed = await self.store.live_pending(user.id, browser, _moment(self.clock.now()))
        if sealed is None:
            log.info("totp set-up code for an expired set-up for user_id=%s", user.id)
            await self._record(ENROLLMENT, "expired", user, origin)
            return Outcome.SETUP_EXPIRED
        secret = self.box.open(user.id, sealed)
        check = self.totp.check(secret, code, self.clock.now())
        if check.step is None:
            if check.skew_steps is not None:
                log.info("totp set-up code from a skewed clock for user_id=%s", user.id)
                return self._skew(check.skew_steps)
            log.info("totp set-up code wrong for user_id=%s", user.id)
            return Outcome.WRONG_CODE
        # Sealed afresh: the stored credential gets its own nonce, and the used step is
        # recorded with it, so the set-up code cannot sign in a second time.
        if not await self.store.confirm_enrollment(user.id, self.box.seal(user.id, secret), check.step):
            log.warning("totp set-up lost a race for user_id=%s: already enrolled", user.id)
            return Outcome.ALREADY_ENROLLED
        log.info("totp authenticator bound for user_id=%s", user.id)
        await self._record(ENROLLMENT, "confirmed", user, origin)
        return Outcome.OK

    async def verify(
        self,
        user: User,
        account: str,
        code: str,
        origin: Origin,
        device: str | None = None,
        *,
        clear_now: bool,
        sign_in: CodeStep | None = None,
    ) -> Outcome | ClockSkew | Locked:
        """Checks a code from the user's bound authenticator; each step is good once.

        auth counts the attempt first (per account and IP, on every replica) and may refuse
        it: then the code is not even looked at, and the answer is Locked with auth's wait.
        clear_now: a right code is told to auth at once, which clears the failure counts; at
        sign-in (False) the complete step tells it instead, when auth consumes that step.
        sign_in: the sign-in step the code is for. Its step token is consumed with the right
        code, in one statement, so OK means the step is spent (LoginSteps.complete_consumed);
        STEP_REPLAYED if another request spent it meanwhile.
        """
        credential = sign_in.credential if sign_in is not None else await self.store.get_credential(user.id)
        if credential is None:
            return Outcome.NOT_ENROLLED
        decision = await self.throttle.admit(account, origin.ip, device)
        if not decision.allowed:
            log.warning("totp verify refused for user_id=%s: sign-in locked by auth", user.id)
            await self._record(SIGN_IN_OTP, "locked", user, origin)
            return Locked(decision.locked_seconds or 0)
        secret = self.box.open(user.id, credential.secret_ciphertext)
        now = self.clock.now()
        check = self.totp.check(secret, code, now)
        if check.step is None:
            if check.skew_steps is not None:
                # Right for another time: a failed attempt (auth counted it, and is not told
                # otherwise). A step still to come is refused for good, or a guesser would get
                # every step within the hint's reach for the price of one guess.
                log.info("totp verify from a skewed clock for user_id=%s", user.id)
                if check.skew_steps > 0:
                    current = self.totp.step_at(now)
                    await self.store.refuse_step(
                        user.id, current + check.skew_steps, current - self.totp.window_steps
                    )
                await self._record(SIGN_IN_OTP, "clock_skew", user, origin)
                return self._skew(check.skew_steps)
            log.info("totp verify failed for user_id=%s", user.id)
            await self._record(SIGN_IN_OTP, "invalid", user, origin)
            return Outcome.WRONG_CODE
        if check.step in credential.hinted_steps:
            log.warning("totp verify refused for user_id=%s: the code earned a clock-skew hint", user.id)
            await self._record(SIGN_IN_OTP, "hinted", user, origin)
            return Outcome.WRONG_CODE
        # The replay guard, the audit row and the step's consumption: one statement, one round trip.
        used = await self.store.record_used_step(
            user.id,
            check.step,
            self._row(SIGN_IN_OTP, "ok", user, origin),
            refused_outcome="replayed",
            step_token=sign_in.token if sign_in is not None else None,
            now=_moment(now),
        )
        AuditTrail.counted(SIGN_IN_OTP, "ok" if used is UsedStep.ACCEPTED else "replayed")
        if used is UsedStep.STEP_USED:
            log.warning("totp verify refused for user_id=%s: code already used", user.id)
            return Outcome.CODE_ALREADY_USED
        if used is UsedStep.STEP_CONSUMED:
            log.warning("totp verify refused for user_id=%s: the sign-in step went on meanwhile", user.id)
            return Outcome.STEP_REPLAYED
        if clear_now:
            await self.throttle.succeeded(account, origin.ip, device)
        log.info("totp verify succeeded for user_id=%s", user.id)
        return Outcome.OK

    def _skew(self, steps: int) -> ClockSkew:
        return ClockSkew(steps * self.totp.options.period)

    def _row(self, event: str, outcome: str, user: User, origin: Origin) -> AuditEvent:
        return self.audit.row(event, outcome, user_id=user.id, username=user.username, origin=origin)

    async def _record(self, event: str, outcome: str, user: User, origin: Origin) -> None:
        await self.audit.record(event, outcome, user_id=user.id, username=user.username, origin=origin)

    async def _pending_secret(self, user: User, origin: Origin, browser: str) -> str:
        now = self.clock.now()
        candidate = self.box.seal(user.id, self.totp.generate_secret())
        sealed = await self.store.get_or_create_pending(
            user.id,
            browser,
            candidate,
            expires_at=_moment(now + self.enrollment_ttl_seconds),
            now=_moment(now),
        )
        if sealed == candidate:
            # Each seal has a fresh nonce: only a set-up made just now can equal the candidate.
            await self._record(ENROLLMENT, "started", user, origin)
        return self.box.open(user.id, sealed)
