"""What auth and mfa do alike with step tokens: check that one is genuine, live, this browser's
and at a stage its issuer may mint; and consume it once.

Each service then checks the claims its own step needs.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from .clock import Clock
from .errors import ServiceError
from .tokens import LEEWAY_SECONDS, InvalidToken, TokenVerifier
from .web import STEP_EXPIRED, _


class StepExpired(ServiceError):
    status_code = 400
    code = STEP_EXPIRED
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


class ConsumedStepTokenRows(Protocol):
    """Where a service keeps the jti of each step token whose step succeeded (in its own schema)."""

    async def consume_step_token(self, jti: str, expires_at: datetime, now: datetime) -> bool: ...

    async def report_replay(self, jti: str) -> bool: ...


# Each consume also clears up to this many expired rows, so the table stays small.
EXPIRED_TOKENS_PER_SWEEP = 100

# A step token's consumption as the start of a statement ($1 jti, $2 kept until, $3 now, $4
# EXPIRED_TOKENS_PER_SWEEP): `consumed` holds the jti the first time, no row on a replay. What
# follows reads it: the jti alone here; auth's audit row rides along (services/auth/store.py).
STEP_CONSUMPTION_CTES = (
    "WITH swept AS (DELETE FROM consumed_step_token WHERE jti IN ("
    "  SELECT jti FROM consumed_step_token WHERE expires_at < $3 LIMIT $4)), "
    "consumed AS (INSERT INTO consumed_step_token (jti, expires_at) VALUES ($1, $2) "
    "  ON CONFLICT (jti) DO NOTHING RETURNING jti) "
)


@dataclass(frozen=True)
class StepConsumption:
    """What consuming one step token writes: its jti, kept until `expires_at`, swept at `now`."""

    jti: str
    expires_at: datetime
    now: datetime


class PostgresConsumedStepTokens:
    """The `consumed_step_token` table that auth and mfa each have, in their own schema."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def consume_step_token(self, jti: str, expires_at: datetime, now: datetime) -> bool:
        """True the first time a jti is seen; False on a replay. One statement, one round trip:
        the sweep of expired rows rides along with the insert."""
        consumed = await self.pool.fetchval(
            STEP_CONSUMPTION_CTES + "SELECT jti FROM consumed",  # noqa: S608 (constant SQL)
            jti,
            expires_at,
            now,
            EXPIRED_TOKENS_PER_SWEEP,
        )
        return consumed is not None

    async def report_replay(self, jti: str) -> bool:
        """True for the first replay of a consumed token only (atomically, across replicas)."""
        reported = await self.pool.fetchval(
            "UPDATE consumed_step_token SET replay_reported = true "
            "WHERE jti = $1 AND NOT replay_reported RETURNING jti",
            jti,
        )
        return reported is not None


def kept_until(exp: int) -> datetime:
    """How long a used jti is kept: as long as a verifier could still accept its token, `exp`
    plus the verification leeway. A sweep that forgot it at `exp` would let the token through again."""
    return datetime.fromtimestamp(exp + LEEWAY_SECONDS, UTC)


class ConsumedStepTokens:
    """Single use of step tokens, for auth and mfa alike (each jti kept until `kept_until`)."""

    def __init__(self, rows: ConsumedStepTokenRows, clock: Clock) -> None:
        self.rows = rows
        self.clock = clock

    async def consume(self, jti: str, exp: int) -> bool:
        """True the first time; False when the token's step already succeeded."""
        consumption = self.consumption(jti, exp)
        return await self.rows.consume_step_token(jti, consumption.expires_at, consumption.now)

    def consumption(self, jti: str, exp: int) -> StepConsumption:
        """What consuming this token writes, for a statement that does more at the same time."""
        return StepConsumption(
            jti,
            kept_until(exp),
            datetime.fromtimestamp(self.clock.now(), UTC),
        )

    async def first_replay(self, jti: str) -> bool:
        """Whether this replay of a consumed token is its first: the audit records it once, not
        once per request (a loop of replays would fill the audit trail)."""
        return await self.rows.report_replay(jti)
