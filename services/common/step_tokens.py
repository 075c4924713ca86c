"""What auth and mfa check alike in a step token: genuine, live, this browser's, at a stage its issuer may mint.

Each service then checks the claims its own step needs.
"""

from typing import Any

from .errors import ServiceError
from .tokens import InvalidToken, TokenVerifier
from .web import _


class StepExpired(ServiceError):
    status_code = 400
    code = "step_expired"
    message = _("Your sign-in has expired. Please start again from the customer portal.")


async def verified_step_claims(
    verifier: TokenVerifier, token: str | None, binding: str, stage_issuers: dict[str, str]
) -> dict[str, Any]:
    """The claims, if the token is at one of these stages and was issued by that stage's issuer."""
    if not token:
        raise StepExpired(detail="no step token")
    try:
        claims = await verifier.verify(token)
    except InvalidToken as error:
        raise StepExpired(detail=f"step token refused: {error}") from error
    stage = claims.get("stage")
    if stage not in stage_issuers or stage_issuers[stage] != claims["iss"]:
        raise StepExpired(
            detail=f"step token at stage {stage!r} from {claims['iss']}, wanted {sorted(stage_issuers)}"
        )
    if claims.get("bnd") != binding:
        raise StepExpired(detail="step token issued to another browser")
    if not isinstance(claims.get("authz"), dict):
        raise StepExpired(detail="step token without authorize request")
    return claims
