"""All of mfa's SQL, and nothing else. Times come from the caller's clock, not the database's."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

# Each consume also clears up to this many expired rows, so the table stays small.
EXPIRED_TOKENS_PER_SWEEP = 100


@dataclass(frozen=True)
class TotpCredential:
    user_id: str
    secret_ciphertext: bytes
    last_used_step: int | None


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
            "SELECT user_id, secret_ciphertext, last_used_step FROM totp_credential WHERE user_id = $1",
            user_id,
        )
        return None if row is None else TotpCredential(**dict(row))

    async def get_or_create_pending(
        self, user_id: str, candidate_ciphertext: bytes, expires_at: datetime, now: datetime
    ) -> bytes:
        """The live pending secret, or the candidate when there is none (or it expired)."""
        async with self.pool.acquire() as connection, connection.transaction():
            # Replaces only an expired row, so two tabs opened together see the same secret.
            created = await connection.fetchval(
                "INSERT INTO pending_enrollment (user_id, secret_ciphertext, expires_at) "
                "VALUES ($1, $2, $3) "
                "ON CONFLICT (user_id) DO UPDATE "
                "SET secret_ciphertext = EXCLUDED.secret_ciphertext, expires_at = EXCLUDED.expires_at "
                "WHERE pending_enrollment.expires_at <= $4 "
                "RETURNING secret_ciphertext",
                user_id,
                candidate_ciphertext,
                expires_at,
                now,
            )
            if created is not None:
                return bytes(created)
            existing = await connection.fetchval(
                "SELECT secret_ciphertext FROM pending_enrollment WHERE user_id = $1", user_id
            )
            return bytes(existing)

    async def confirm_enrollment(self, user_id: str, secret_ciphertext: bytes, used_step: int) -> bool:
        """Binds the authenticator and ends the set-up; False if the user already has one."""
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

    async def record_used_step(self, user_id: str, step: int) -> bool:
        """The replay guard: True only the first time a step is used (or a later one)."""
        updated = await self.pool.fetchval(
            "UPDATE totp_credential "
            "SET last_used_step = $2 "
            "WHERE user_id = $1 AND (last_used_step IS NULL OR last_used_step < $2) "
            "RETURNING user_id",
            user_id,
            step,
        )
        return updated is not None

    async def is_consumed(self, jti: str) -> bool:
        """Whether a step token's step already succeeded here."""
        found = await self.pool.fetchval("SELECT 1 FROM consumed_step_token WHERE jti = $1", jti)
        return found is not None

    async def consume_step_token(self, jti: str, expires_at: datetime, now: datetime) -> bool:
        """True the first time a jti is seen; False on a replay."""
        async with self.pool.acquire() as connection:
            await connection.execute(
                "DELETE FROM consumed_step_token WHERE jti IN ("
                "  SELECT jti FROM consumed_step_token WHERE expires_at < $1 LIMIT $2)",
                now,
                EXPIRED_TOKENS_PER_SWEEP,
            )
            consumed = await connection.fetchval(
                "INSERT INTO consumed_step_token (jti, expires_at) VALUES ($1, $2) "
                "ON CONFLICT (jti) DO NOTHING RETURNING jti",
                jti,
                expires_at,
            )
            return consumed is not None

    async def delete_user(self, user_id: str) -> bool:
        """Removes the authenticator and any set-up in progress; True if there was either."""
        async with self.pool.acquire() as connection, connection.transaction():
            credentials = await connection.execute("DELETE FROM totp_credential WHERE user_id = $1", user_id)
            pending = await connection.execute("DELETE FROM pending_enrollment WHERE user_id = $1", user_id)
            return _deleted(credentials) + _deleted(pending) > 0

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

    async def credential_status(self, user_id: str, now: datetime) -> tuple[datetime | None, bool]:
        """When the user's authenticator was bound (None: none is), and whether a set-up is pending."""
        row = await self.pool.fetchrow(
            "SELECT (SELECT created_at FROM totp_credential WHERE user_id = $1) AS enrolled_since, "
            "EXISTS (SELECT 1 FROM pending_enrollment WHERE user_id = $1 AND expires_at > $2) AS pending",
            user_id,
            now,
        )
        return (row["enrolled_since"], bool(row["pending"])) if row else (None, False)
