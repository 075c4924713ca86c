"""All of mfa's SQL, and nothing else. Times come from the caller's clock, not the database's."""

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import asyncpg

from services.common.step_tokens import EXPIRED_TOKENS_PER_SWEEP


@dataclass(frozen=True)
class TotpCredential:
    user_id: str
    secret_ciphertext: bytes
    last_used_step: int | None
    # Steps ahead of ours that a code earned a clock-skew hint for: never accepted later.
    hinted_steps: tuple[int, ...] = ()


@dataclass(frozen=True)
class StepRecords:
    """What a sign-in step reads before it decides, all in one SELECT (MfaStore.step_records)."""

    # The step token's step already succeeded (its jti is in consumed_step_token).
    consumed: bool
    credential: TotpCredential | None
    # This browser's pending set-up secret while it lasts.
    pending_setup: bytes | None
    # The sealed recovery codes this very step is to show, while they last.
    recovery_display: bytes | None


class UsedStep(Enum):
    """What MfaStore.record_used_step made of a right code."""

    ACCEPTED = "accepted"
    # The TOTP step was used already (or earned a clock-skew hint): the replay guard refused it.
    STEP_USED = "step_used"
    # The step token's step succeeded meanwhile (another request with another code).
    STEP_CONSUMED = "step_consumed"


@dataclass(frozen=True)
class AuditEvent:
    """One row of mfa.audit_event; never a code, secret or token."""

    at: datetime
    user_id: str | None
    username: str | None
    event: str
    outcome: str
    ip: str | None
    user_agent: str | None
    # Set on admin actions only: who did it (ssoctl's operator, the support user), and why.
    operator: str | None = None
    reason: str | None = None


def _deleted(status: str) -> int:
    """asyncpg returns a command tag such as 'DELETE 2'."""
    return int(status.rsplit(" ", 1)[-1])


class MfaStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get_credential(self, user_id: str) -> TotpCredential | None:
        row = await self.pool.fetchrow(
            "SELECT user_id, secret_ciphertext, last_used_step, hinted_steps FROM totp_credential "
            "WHERE user_id = $1",
            user_id,
        )
        if row is None:
            return None
        return TotpCredential(
            row["user_id"], row["secret_ciphertext"], row["last_used_step"], tuple(row["hinted_steps"])
        )

    async def step_records(self, user_id: str, step_jti: str, browser: str, now: datetime) -> StepRecords:
        """One round trip for what GET /mfa/ and POST /mfa/verify read before deciding."""
        row = await self.pool.fetchrow(
            "SELECT EXISTS (SELECT 1 FROM consumed_step_token WHERE jti = $2) AS consumed, "
            "credential.user_id AS enrolled_user, credential.secret_ciphertext, credential.last_used_step, "
            "credential.hinted_steps, "
            "(SELECT secret_ciphertext FROM pending_enrollment "
            " WHERE user_id = $1 AND browser = $3 AND expires_at > $4) AS pending_setup, "
            "(SELECT sealed_codes FROM recovery_code_display "
            " WHERE user_id = $1 AND step_jti = $2 AND expires_at > $4) AS recovery_display "
            "FROM (VALUES (1)) AS one (row) LEFT JOIN totp_credential AS credential ON credential.user_id = $1",
            user_id,
            step_jti,
            browser,
            now,
        )
        credential = None
        if row["enrolled_user"] is not None:
            credential = TotpCredential(
                row["enrolled_user"],
                row["secret_ciphertext"],
                row["last_used_step"],
                tuple(row["hinted_steps"]),
            )
        pending, display = row["pending_setup"], row["recovery_display"]
        return StepRecords(
            consumed=bool(row["consumed"]),
            credential=credential,
            pending_setup=None if pending is None else bytes(pending),
            recovery_display=None if display is None else bytes(display),
        )

    async def get_or_create_pending(
        self, user_id: str, browser: str, candidate_ciphertext: bytes, expires_at: datetime, now: datetime
    ) -> bytes:
        """This browser's live pending secret, or the candidate when it has none (or it expired)."""
        async with self.pool.acquire() as connection, connection.transaction():
            # Replaces only an expired row, so two tabs of one browser see the same secret.
            created = await connection.fetchval(
                "INSERT INTO pending_enrollment (user_id, browser, secret_ciphertext, expires_at) "
                "VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (user_id, browser) DO UPDATE "
                "SET secret_ciphertext = EXCLUDED.secret_ciphertext, expires_at = EXCLUDED.expires_at "
                "WHERE pending_enrollment.expires_at <= $5 "
                "RETURNING secret_ciphertext",
                user_id,
                browser,
                candidate_ciphertext,
                expires_at,
                now,
            )
            if created is not None:
                return bytes(created)
            existing = await connection.fetchval(
                "SELECT secret_ciphertext FROM pending_enrollment WHERE user_id = $1 AND browser = $2",
                user_id,
                browser,
            )
            return bytes(existing)

    async def live_pending(self, user_id: str, browser: str, now: datetime) -> bytes | None:
        """This browser's pending secret while it lasts; None once it has expired (or never was)."""
        found = await self.pool.fetchval(
            "SELECT secret_ciphertext FROM pending_enrollment "
            "WHERE user_id = $1 AND browser = $2 AND expires_at > $3",
            user_id,
            browser,
            now,
        )
        return None if found is None else bytes(found)

    async def confirm_enrollment(self, user_id: str, secret_ciphertext: bytes, used_step: int) -> bool:
        """Binds the authenticator and ends every set-up of the user; False if they already have one."""
        async with self.pool.acquire() as connection, connection.transaction():
            inserted = await connection.fetchval(
                "INSERT INTO totp_credential (user_id, secret_ciphertext, last_used_step) "
                "VALUES ($1, $2, $3) ON CONFLICT (user_id) DO NOTHING RETURNING user_id",
                user_id,
                secret_ciphertext,
                used_step,
            )
            if inserted is None:
                return False
            await connection.execute("DELETE FROM pending_enrollment WHERE user_id = $1", user_id)
            return True

    async def record_used_step(
        self,
        user_id: str,
        step: int,
        audit: AuditEvent,
        *,
        refused_outcome: str,
        step_token: tuple[str, datetime] | None,
        now: datetime,
    ) -> UsedStep:
        """The replay guard, the audit row and the step token's consumption in one statement.

        The guard: a TOTP step is accepted only the first time it is used (or a later one), never
        one that earned a clock-skew hint. The UPDATE's row lock makes a racing second statement
        with the same step find it used. step_token (jti, kept until): a sign-in's otp step, consumed
        only with an accepted step; two racing statements with one jti insert it once (the
        primary key), and the second is STEP_CONSUMED. None outside sign-in (the Security
        page's renew), where no step goes on. The audit row is `audit` when accepted, and carries
        refused_outcome otherwise. Expired consumed rows are swept as ConsumedStepTokens does.
        """
        jti, kept_until = step_token if step_token is not None else (None, None)
        what = await self.pool.fetchval(
            "WITH used AS ("
            "  UPDATE totp_credential SET last_used_step = $2 "
            "  WHERE user_id = $1 AND (last_used_step IS NULL OR last_used_step < $2) "
            "  AND NOT ($2 = ANY(hinted_steps)) RETURNING user_id), "
            "swept AS ("
            "  DELETE FROM consumed_step_token WHERE $3::text IS NOT NULL AND jti IN ("
            "    SELECT jti FROM consumed_step_token WHERE expires_at < $5 LIMIT $6)), "
            "consumed AS ("
            "  INSERT INTO consumed_step_token (jti, expires_at) "
            "  SELECT $3::text, $4::timestamptz FROM used WHERE $3::text IS NOT NULL "
            "  ON CONFLICT (jti) DO NOTHING RETURNING jti), "
            "outcome AS ("
            "  SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM used) THEN $7 "
            "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM consumed) THEN $8 "
            "  ELSE $9 END AS what), "
            "audited AS ("
            "  INSERT INTO audit_event (at, user_id, username, event, outcome, ip, user_agent, operator, reason) "
            "  SELECT $10, $1, $11, $12, CASE WHEN what = $9 THEN $13 ELSE $14 END, $15, $16, $17, $18 "
            "  FROM outcome) "
            "SELECT what FROM outcome",
            user_id,
            step,
            jti,
            kept_until,
            now,
            EXPIRED_TOKENS_PER_SWEEP,
            UsedStep.STEP_USED.value,
            UsedStep.STEP_CONSUMED.value,
            UsedStep.ACCEPTED.value,
            audit.at,
            audit.username,
            audit.event,
            audit.outcome,
            refused_outcome,
            audit.ip,
            audit.user_agent,
            audit.operator,
            audit.reason,
        )
        return UsedStep(what)

    async def refuse_step(self, user_id: str, step: int, oldest_kept: int) -> None:
        """A code for `step` earned a clock-skew hint: it never signs in. Steps before
        `oldest_kept` can no longer be accepted anyway, so they are dropped."""
        await self.pool.execute(
            "UPDATE totp_credential SET hinted_steps = array_append("
            "  ARRAY(SELECT kept FROM unnest(hinted_steps) AS kept WHERE kept >= $3), $2::bigint) "
            "WHERE user_id = $1 AND NOT ($2 = ANY(hinted_steps))",
            user_id,
            step,
            oldest_kept,
        )

    async def delete_user(self, user_id: str) -> bool:
        """Removes the authenticator, its recovery codes and any set-up in progress; True if there
        was an authenticator or a set-up."""
        async with self.pool.acquire() as connection, connection.transaction():
            credentials = await connection.execute("DELETE FROM totp_credential WHERE user_id = $1", user_id)
            pending = await connection.execute("DELETE FROM pending_enrollment WHERE user_id = $1", user_id)
            await connection.execute("DELETE FROM recovery_code WHERE user_id = $1", user_id)
            await connection.execute("DELETE FROM recovery_code_display WHERE user_id = $1", user_id)
            return _deleted(credentials) + _deleted(pending) > 0

    async def replace_recovery_codes(self, user_id: str, digests: list[bytes], now: datetime) -> None:
        """The user's new set; the old one (used or not) is gone in the same transaction."""
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute("DELETE FROM recovery_code WHERE user_id = $1", user_id)
            await connection.executemany(
                "INSERT INTO recovery_code (user_id, code_hash, created_at) VALUES ($1, $2, $3)",
                [(user_id, digest, now) for digest in digests],
            )

    async def use_recovery_code(self, user_id: str, digest: bytes, now: datetime) -> int | None:
        """Spends the code (once: the row lock makes a racing second UPDATE find used_at set);
        how many unused ones are left, or None if it was not an unused code of the user."""
        async with self.pool.acquire() as connection, connection.transaction():
            spent = await connection.fetchval(
                "UPDATE recovery_code SET used_at = $3 "
                "WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL RETURNING user_id",
                user_id,
                digest,
                now,
            )
            if spent is None:
                return None
            left: int = await connection.fetchval(
                "SELECT count(*) FROM recovery_code WHERE user_id = $1 AND used_at IS NULL", user_id
            )
            return left

    async def recovery_codes_left(self, user_id: str) -> int:
        left: int = await self.pool.fetchval(
            "SELECT count(*) FROM recovery_code WHERE user_id = $1 AND used_at IS NULL", user_id
        )
        return left

    async def hold_recovery_display(
        self, user_id: str, step_jti: str, sealed: bytes, expires_at: datetime, now: datetime
    ) -> None:
        """Keeps the sealed codes for their one display; expired displays of anyone go first."""
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute("DELETE FROM recovery_code_display WHERE expires_at <= $1", now)
            await connection.execute(
                "INSERT INTO recovery_code_display (user_id, step_jti, sealed_codes, expires_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, step_jti) DO UPDATE "
                "SET sealed_codes = EXCLUDED.sealed_codes, expires_at = EXCLUDED.expires_at",
                user_id,
                step_jti,
                sealed,
                expires_at,
            )

    async def end_recovery_display(self, user_id: str, step_jti: str, now: datetime) -> bool:
        """Deletes the display; True only for the one request that found it live."""
        ended = await self.pool.fetchval(
            "DELETE FROM recovery_code_display WHERE user_id = $1 AND step_jti = $2 "
            "RETURNING expires_at > $3",
            user_id,
            step_jti,
            now,
        )
        return bool(ended)

    async def add_audit_event(self, event: AuditEvent) -> None:
        await self.pool.execute(
            "INSERT INTO audit_event (at, user_id, username, event, outcome, ip, user_agent, operator, reason) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            event.at,
            event.user_id,
            event.username,
            event.event,
            event.outcome,
            event.ip,
            event.user_agent,
            event.operator,
            event.reason,
        )

    async def audit_rows(self, user_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The user's newest `limit` rows, oldest first."""
        rows = await self.pool.fetch(
            "SELECT * FROM (SELECT id, at, user_id, username, event, outcome, ip, user_agent, operator, reason "
            "FROM audit_event WHERE user_id = $1 ORDER BY at DESC, id DESC LIMIT $2) newest ORDER BY at, id",
            user_id,
            limit,
        )
        return [dict(row) for row in rows]

    async def credential_status(self, user_id: str, now: datetime) -> tuple[datetime | None, bool, int]:
        """When the user's authenticator was bound (None: none is), whether a set-up is pending,
        and how many unused recovery codes the user has."""
        row = await self.pool.fetchrow(
            "SELECT (SELECT created_at FROM totp_credential WHERE user_id = $1) AS enrolled_since, "
            "EXISTS (SELECT 1 FROM pending_enrollment WHERE user_id = $1 AND expires_at > $2) AS pending, "
            "(SELECT count(*) FROM recovery_code WHERE user_id = $1 AND used_at IS NULL) AS codes_left",
            user_id,
            now,
        )
        if row is None:
            return None, False, 0
        return row["enrolled_since"], bool(row["pending"]), int(row["codes_left"])
