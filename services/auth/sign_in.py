"""The rules of the password step and of sign-in attempts: throttled, audited, enumeration-safe."""

import logging
from dataclasses import dataclass

from services.common.errors import REDIS_OUTAGES
from services.common.metrics import LOCKOUTS
from services.common.step_tokens import StepConsumption
from services.contracts.auth import CodeAttempt

from .accounts import Accounts, username_key
from .audit import Actor, AuditLog
from .login_flow import replayed
from .store import User
from .throttle import AttemptKind, Throttle, Verdict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Locked:
    """A refused password attempt of a known browser: the seconds to wait, -1 until an unlock."""

    seconds: int


class SignInSteps:
    def __init__(self, accounts: Accounts, throttle: Throttle, audit: AuditLog) -> None:
        self.accounts = accounts
        self.throttle = throttle
        self.audit = audit

    async def username_given(self, login_name: str, actor: Actor, step: StepConsumption) -> None:
        """The username step used up and audited in one statement; a replay writes nothing and
        is refused (StepExpired)."""
        # Only a name that is an account goes into the audit: people type passwords into name fields.
        if not await self.audit.record_consuming(
            step, "sign_in.username", "submitted", actor, username_key=username_key(login_name)
        ):
            raise replayed()

    async def check_password(
        self, login_name: str, password: str, actor: Actor, step: StepConsumption, device: str | None = None
    ) -> User | Locked | None:
        """The user when the password is right and the account may sign in; else None, whatever
        the reason, except for a known browser that is locked out: Locked, with its wait.

        A right password uses up the password `step` in the statement that audits it (the row
        is written on a replay too: the attempt happened); a replay is then refused (StepExpired).

        `device`: this browser's device id for the account (a known browser), or None. Its device
        cookie, which only a completed sign-in of this account earns, is what may learn of a lock;
        to any other browser a lock looks like a wrong password (docs/security.md, "Locks").
        """
        account = username_key(login_name)
        verdict = await self.throttle.begin(AttemptKind.PASSWORD, account, actor.ip, device)
        if not verdict.allowed:
            await self._refused(AttemptKind.PASSWORD, verdict, await self.accounts.lookup(login_name), actor)
            return Locked(verdict.lock_seconds) if device is not None else None
        result = await self.accounts.authenticate(login_name, password)
        await self._address_noisy(verdict, result.known, actor)
        user_id = result.known.id if result.known else None
        username = result.known.username if result.known else None
        if result.user is None:
            await self.audit.record(
                "sign_in.password", result.outcome, actor, user_id=user_id, username=username
            )
            return None
        consumed = await self.audit.record_consuming(
            step,
            "sign_in.password",
            result.outcome,
            actor,
            user_id=user_id,
            username=username,
            even_if_replayed=True,
        )
        await self._clear_failures(AttemptKind.PASSWORD, account, actor.ip, device)
        if not consumed:
            raise replayed()
        return result.user

    async def begin_code_attempt(self, account: str, actor: Actor, device: str | None = None) -> Verdict:
        """Counts a code attempt for mfa before it checks the code; not allowed: refuse it unchecked."""
        verdict = await self.throttle.begin(AttemptKind.OTP, account, actor.ip, device)
        if not verdict.allowed:
            await self._refused(AttemptKind.OTP, verdict, await self.accounts.lookup(account), actor)
        elif verdict.address_noisy_now:
            # The user is looked up only for the audit line: most attempts have none to write.
            await self._address_noisy(verdict, await self.accounts.lookup(account), actor)
        return verdict

    async def code_accepted(self, account: str, actor: Actor, device: str | None = None) -> None:
        """mfa's word that a code was right, outside sign-in (/internal/attempts/succeeded)."""
        await self.throttle.succeeded(AttemptKind.OTP, account, actor.ip, device)

    async def code_step_completed(self, accepted: CodeAttempt) -> None:
        """The sign-in's right code, from the complete step auth has just consumed: that browser's
        OTP failure counts go. The sign-in goes on if Redis does not answer; the counts stay."""
        await self._clear_failures(AttemptKind.OTP, accepted.account, accepted.ip, accepted.device)

    async def _clear_failures(self, kind: AttemptKind, account: str, ip: str, device: str | None) -> None:
        """A right password or code clears its failure counts. Its step is already used up, so a
        Redis that does not answer must not turn the sign-in into a 503: the customer's try again
        would find the step spent. The counts stay, which only keeps a lock stricter."""
        try:
            await self.throttle.succeeded(kind, account, ip, device)
        except REDIS_OUTAGES:
            log.error("could not clear the failure counts (%s) of a sign-in; they stay", kind.value)

    async def _address_noisy(self, verdict: Verdict, known: User | None, actor: Actor) -> None:
        # Said once per window, for the alert; the attempt itself goes on to its check.
        if verdict.address_noisy_now:
            LOCKOUTS.labels(reason=verdict.reason).inc()
            await self.audit.record(
                "lockout",
                verdict.reason,
                actor,
                user_id=known.id if known else None,
                username=known.username if known else None,
            )

    async def _refused(self, kind: AttemptKind, verdict: Verdict, known: User | None, actor: Actor) -> None:
        user_id = known.id if known else None
        username = known.username if known else None
        if verdict.locked_now:
            LOCKOUTS.labels(reason=verdict.reason).inc()
            outcome = f"{verdict.reason}_known_browser" if verdict.known_browser else verdict.reason
            await self.audit.record("lockout", outcome, actor, user_id=user_id, username=username)
        if kind is AttemptKind.PASSWORD:
            await self.audit.record("sign_in.password", "locked", actor, user_id=user_id, username=username)
