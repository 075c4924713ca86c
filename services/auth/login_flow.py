"""Step tokens: how a browser carries its progress from one login step to the next.

Each is a short-lived JWT bound to the browser (the `bnd` claim), kept in an HttpOnly
cookie, and consumed when its step succeeds, so it cannot be replayed or skipped past.
"""

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.common.step_tokens import ConsumedStepTokens, StepConsumption, StepExpired, verified_step_claims
from services.common.tokens import TokenIssuer, TokenVerifier
from services.contracts.auth import CLEAR_THROTTLE_CLAIM, CodeAttempt

# Which service may issue each stage that auth accepts.
STAGE_ISSUERS = {"username": "auth", "password": "auth", "complete": "mfa"}


@dataclass(frozen=True)
class Step:
    stage: str
    claims: dict[str, Any]

    @property
    def authz(self) -> dict[str, str]:
        authz: dict[str, str] = self.claims["authz"]
        return authz

    def accepted_code(self) -> CodeAttempt | None:
        """A complete step's `clear_throttle` claim: the browser whose right code mfa accepted,
        whose OTP failure counts go once the step is consumed. None when there is none (a set-up
        code, never counted). A claim that is there but not in the contract: StepExpired."""
        claim = self.claims.get(CLEAR_THROTTLE_CLAIM)
        if claim is None:
            return None
        try:
            return CodeAttempt.model_validate(claim)
        except ValidationError as error:
            raise StepExpired(
                detail=f"{self.stage} step token with a malformed {CLEAR_THROTTLE_CLAIM}"
            ) from error


class LoginFlow:
    def __init__(
        self, issuer: TokenIssuer, verifier: TokenVerifier, consumed: ConsumedStepTokens, ttl_seconds: int
    ) -> None:
        self.issuer = issuer
        self.verifier = verifier
        self.consumed = consumed
        self.ttl_seconds = ttl_seconds

    def issue(
        self, stage: str, binding: str, authz: dict[str, str], audience: str = "auth", **claims: Any
    ) -> str:
        token = self.issuer.issue(
            audience, self.ttl_seconds, {"stage": stage, "bnd": binding, "authz": authz, **claims}
        )
        # The browser brings it back to this process more often than not (the next page, then
        # its form): its signature need not be checked there. A step for mfa is not kept.
        self.verifier.remember_signed_here(token)
        return token

    async def read(self, token: str | None, binding: str, stages: set[str]) -> Step:
        """The step the browser is at, if its token is genuine, live, its own, and at one of these stages."""
        wanted = {stage: STAGE_ISSUERS[stage] for stage in stages}
        claims = await verified_step_claims(self.verifier, token, binding, wanted)
        return Step(claims["stage"], claims)

    async def consume(self, step: Step) -> None:
        if not await self.consumed.consume(step.claims["jti"], step.claims["exp"]):
            raise replayed()

    def consumption(self, step: Step) -> StepConsumption:
        """What consuming the step writes, for the statement that also audits it (AuditLog.record_consuming)."""
        return self.consumed.consumption(step.claims["jti"], step.claims["exp"])


def replayed() -> StepExpired:
    return StepExpired(detail="step token replayed")
