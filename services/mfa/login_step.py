"""Step tokens at mfa: the `otp` stage from auth comes in, the `complete` stage goes back.

How the token travels (the `login_step` cookie) is the routes' business; this module only
checks what comes in, consumes it once, and issues the next one.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from services.common.clock import Clock
from services.common.step_tokens import ConsumedStepTokens, StepExpired, kept_until, verified_step_claims
from services.common.tokens import TokenIssuer, TokenVerifier
from services.contracts.auth import CLEAR_THROTTLE_CLAIM, CodeAttempt

from .enrollment import CodeStep, User
from .store import StepRecords


class StepReplayed(StepExpired):
    """A step token whose step already succeeded: the customer sees the same expired page."""

    def __init__(self, user: "User", jti: str, *, detail: str) -> None:
        super().__init__(detail=detail)
        self.user = user
        self.jti = jti


@dataclass(frozen=True)
class OtpStep:
    """A live `otp` step token, issued by auth to this browser after the password."""

    user: User
    authz: dict[str, Any]
    jti: str
    expires_at: int
    # The username key auth throttles on (NFKC, trimmed, case-folded); see the contract.
    account: str | None = None
    # The browser's device id for the account, when auth knows it (a device cookie).
    device: str | None = None
    # What the step's routes read before deciding, read with the replay check (LoginSteps.read).
    records: StepRecords = StepRecords(
        consumed=False, credential=None, pending_setup=None, recovery_display=None
    )

    @property
    def enrolled(self) -> bool:
        return self.records.credential is not None

    def code_step(self) -> CodeStep:
        """For Enrollment.verify: a right code consumes this step in the same statement."""
        return CodeStep(self.records.credential, (self.jti, kept_until(self.expires_at)))


class StepRecordStore(Protocol):
    async def step_records(self, user_id: str, step_jti: str, browser: str, now: datetime) -> StepRecords: ...


class LoginSteps:
    def __init__(
        self,
        issuer: TokenIssuer,
        verifier: TokenVerifier,
        consumed: ConsumedStepTokens,
        ttl_seconds: int,
        records: StepRecordStore,
        clock: Clock,
    ) -> None:
        self.issuer = issuer
        self.verifier = verifier
        self.consumed = consumed
        self.ttl_seconds = ttl_seconds
        self.records = records
        self.clock = clock

    async def read(self, token: str | None, binding: str) -> OtpStep:
        """The otp step, if the token is genuine, live, from auth, and this browser's own; with the
        records its routes read (credential, this browser's set-up, the step's recovery codes),
        in the one SELECT that checks the step is not consumed."""
        claims = await verified_step_claims(self.verifier, token, binding, {"otp": "auth"})
        user_id, username = claims.get("sub"), claims.get("preferred_username")
        if not (isinstance(user_id, str) and user_id and isinstance(username, str)):
            raise StepExpired(detail="step token without user")
        if "pwd" not in (claims.get("amr") or []):
            raise StepExpired(detail="step token without a checked password")
        account = claims.get("account")
        if account is not None and not (isinstance(account, str) and account):
            raise StepExpired(detail="step token with a malformed account")
        device = claims.get("device")
        if device is not None and not (isinstance(device, str) and device):
            raise StepExpired(detail="step token with a malformed device")
        user = User(user_id, username)
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        records = await self.records.step_records(user_id, claims["jti"], binding, now)
        # Checked up front, so a used token gets nowhere near a code check.
        if records.consumed:
            raise StepReplayed(user, claims["jti"], detail="step token replayed")
        return OtpStep(user, claims["authz"], claims["jti"], claims["exp"], account, device, records)

    async def complete(
        self,
        step: OtpStep,
        binding: str,
        enrolled: bool,
        recovery_codes_left: int | None = None,
        code_accepted_from: str | None = None,
    ) -> str:
        """Consumes the otp step (once only) and issues the `complete` step for auth.

        recovery_codes_left: set when a recovery code signed in (a one-time password too, so the
        amr stays `otp`), for the Continue page to say how many remain.
        code_accepted_from: the address a counted code (from the app, or a recovery code) was
        accepted from. The token then names the browser whose OTP failure counts auth clears when
        it consumes the step (`clear_throttle`, services.contracts.auth); None for a set-up code,
        which auth never counted.
        """
        self._throttle_claim_allowed(step, code_accepted_from)
        if not await self.consumed.consume(step.jti, step.expires_at):
            raise StepReplayed(step.user, step.jti, detail="step token replayed")
        return self._complete_token(step, binding, enrolled, recovery_codes_left, code_accepted_from)

    def complete_consumed(self, step: OtpStep, binding: str, code_accepted_from: str) -> str:
        """The `complete` step after a code from the app, whose statement consumed the otp step
        already (Enrollment.verify with step.code_step(), Outcome.OK): it is not consumed twice."""
        self._throttle_claim_allowed(step, code_accepted_from)
        return self._complete_token(step, binding, False, None, code_accepted_from)

    @staticmethod
    def _throttle_claim_allowed(step: OtpStep, code_accepted_from: str | None) -> None:
        if code_accepted_from is not None and step.account is None:
            # The routes check no code without an account; a step without one clears nothing.
            raise StepExpired(detail=f"otp step token without account for user_id={step.user.id}")

    def _complete_token(
        self,
        step: OtpStep,
        binding: str,
        enrolled: bool,
        recovery_codes_left: int | None,
        code_accepted_from: str | None,
    ) -> str:
        accepted = None
        if code_accepted_from is not None and step.account is not None:
            accepted = CodeAttempt(
                kind="otp", account=step.account, ip=code_accepted_from, device=step.device
            )
        claims: dict[str, Any] = {
            "stage": "complete",
            "bnd": binding,
            "authz": step.authz,
            "sub": step.user.id,
            "preferred_username": step.user.username,
            "amr": ["pwd", "otp"],
            "enrolled": enrolled,
        }
        if recovery_codes_left is not None:
            claims["recovery_codes_left"] = recovery_codes_left
        if accepted is not None:
            claims[CLEAR_THROTTLE_CLAIM] = accepted.model_dump()
        return self.issuer.issue("auth", self.ttl_seconds, claims)
