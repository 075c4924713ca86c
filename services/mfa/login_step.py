"""Step tokens at mfa: the `otp` stage from auth comes in, the `complete` stage goes back.

How the token travels (the `login_step` cookie) is the routes' business; this module only
checks what comes in, consumes it once, and issues the next one.
"""

from dataclasses import dataclass
from typing import Any

from services.common.step_tokens import ConsumedStepTokens, StepExpired, verified_step_claims
from services.common.tokens import TokenIssuer, TokenVerifier
from services.contracts.auth import CLEAR_THROTTLE_CLAIM, CodeAttempt

from .enrollment import User


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


class LoginSteps:
    def __init__(
        self,
        issuer: TokenIssuer,
        verifier: TokenVerifier,
        consumed: ConsumedStepTokens,
        ttl_seconds: int,
    ) -> None:
        self.issuer = issuer
        self.verifier = verifier
        self.consumed = consumed
        self.ttl_seconds = ttl_seconds

    async def read(self, token: str | None, binding: str) -> OtpStep:
        """The otp step, if the token is genuine, live, from auth, and this browser's own."""
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
        # Checked up front, so a used token gets nowhere near a code check.
        if await self.consumed.is_consumed(claims["jti"]):
            raise StepReplayed(user, claims["jti"], detail="step token replayed")
        return OtpStep(user, claims["authz"], claims["jti"], claims["exp"], account, device)

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
        accepted = None
        if code_accepted_from is not None:
            if step.account is None:
                # The routes check no code without an account; a step without one clears nothing.
                raise StepExpired(detail=f"otp step token without account for user_id={step.user.id}")
            accepted = CodeAttempt(
                kind="otp", account=step.account, ip=code_accepted_from, device=step.device
            )
        if not await self.consumed.consume(step.jti, step.expires_at):
            raise StepReplayed(step.user, step.jti, detail="step token replayed")
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
