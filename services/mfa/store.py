"""All of mfa's SQL, and nothing else. Times come from the caller's clock, not the database's."""

from dataclasses import dataclass
from datetime import datetime

import asyncpg

# Each consume also clears up to this many expired rows, so the table stays small.
EXPIRED_TOKENS_PER_SWEEP = 100


@dataclass(frozen=True)
class TotpCredential:
    user_id: str
    secret_ciphertext: bytes
    last_used_step: int | None
    locked_until: datetime | None


def _deleted(status: str) -> int:
    """asyncpg returns a command tag such as 'DELETE 2'."""
    return int(status.rsplit(" ", 1)[-1])


class MfaStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get_credential(self, user_id: str) -> TotpCredential | None:
        row = await self.pool.fetchrow(
            "SELECT user_id, secret_ciphertext, last_used_step, locked_until "
            "FROM totp_credential WHERE user_id = $1",
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

    async def start_attempt(
        self, user_id: str, max_failed_attempts: int, now: datetime, lock_until: datetime
    ) -> bool:
        """Counts a code attempt up front; False while paused. Row locks make it exact across replicas.

        The count is only cleared by a right code, so once a pause ends each further wrong
        code pauses again: a guesser gets one try per pause, the customer still gets in.
        """
        started = await self.pool.fetchval(
            "UPDATE totp_credential "
            "SET failed_attempts = failed_attempts + 1, "
            "    locked_until = CASE WHEN failed_attempts + 1 >= $2 THEN $4 ELSE locked_until END "
            "WHERE user_id = $1 AND (locked_until IS NULL OR locked_until <= $3) "
            "RETURNING user_id",
            user_id,
            max_failed_attempts,
            now,
            lock_until,
        )
        return started is not None

    async def record_used_step(self, user_id: str, step: int) -> bool:
        """The replay guard: True only the first time a step is used (or a later one)."""
        updated = await self.pool.fetchval(
            "UPDATE totp_credential "
            "SET last_used_step = $2, failed_attempts = 0, locked_until = NULL "
            "WHERE user_id = $1 AND (last_used_step IS NULL OR last_used_step < $2) "
            "RETURNING user_id",
            user_id,
            step,
        )
        return updated is not None

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
