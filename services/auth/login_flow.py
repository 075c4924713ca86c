"""Step tokens: how a browser carries its progress from one login step to the next.

Each is a short-lived JWT bound to the browser (the `bnd` claim), kept in an HttpOnly
cookie, and consumed when its step succeeds, so it cannot be replayed or skipped past.
"""

from dataclasses import dataclass
from typing import Any

from services.common.errors import ServiceError
from services.common.tokens import InvalidToken, TokenIssuer, TokenVerifier
from services.common.web import _

from .store import AuthStore

STEP_COOKIE = "login_step"

# Which service may issue each stage that auth accepts.
STAGE_ISSUERS = {"username": "auth", "password": "auth", "complete": "mfa"}


class StepExpired(ServiceError):
    status_code = 400
    code = "step_expired"
    message = _("Your sign-in has expired. Please start again from the customer portal.")


@dataclass(frozen=True)
class Step:
    stage: str
    claims: dict[str, Any]

    @property
    def authz(self) -> dict[str, str]:
        authz: dict[str, str] = self.claims["authz"]
        return authz


class LoginFlow:
    def __init__(
        self, issuer: TokenIssuer, verifier: TokenVerifier, store: AuthStore, ttl_seconds: int
    ) -> None:
        self.issuer = issuer
        self.verifier = verifier
        self.store = store
        self.ttl_seconds = ttl_seconds

    def issue(
        self, stage: str, binding: str, authz: dict[str, str], audience: str = "auth", **claims: Any
    ) -> str:
        return self.issuer.issue(
            audience, self.ttl_seconds, {"stage": stage, "bnd": binding, "authz": authz, **claims}
        )

    async def read(self, token: str | None, binding: str, stages: set[str]) -> Step:
        """The step the browser is at, if its token is genuine, live, its own, and at one of these stages."""
        if not token:
            raise StepExpired(detail="no step token")
        try:
            claims = await self.verifier.verify(token)
        except InvalidToken as error:
            raise StepExpired(detail=f"step token refused: {error}") from error
        stage = claims.get("stage")
        if stage not in stages or STAGE_ISSUERS.get(stage) != claims["iss"]:
            raise StepExpired(detail=f"step token at stage {stage!r} from {claims['iss']}, wanted {stages}")
        if claims.get("bnd") != binding:
            raise StepExpired(detail="step token issued to another browser")
        if not isinstance(claims.get("authz"), dict):
            raise StepExpired(detail="step token without authorize request")
        return Step(stage, claims)

    async def consume(self, step: Step) -> None:
        if not await self.store.consume_step_token(step.claims["jti"], step.claims["exp"]):
            raise StepExpired(detail="step token replayed")
