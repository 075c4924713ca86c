"""All of auth's SQL, and nothing else."""

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from services.common.step_tokens import EXPIRED_TOKENS_PER_SWEEP, STEP_CONSUMPTION_CTES, StepConsumption


@dataclass(frozen=True)
class User:
    id: UUID
    username: str
    password_hash: str
    disabled: bool


@dataclass(frozen=True)
class Account:
    """What an administrator sees of a user: never the password hash."""

    id: UUID
    username: str
    username_key: str
    role: str
    disabled: bool
    created_at: datetime


ACCOUNT_COLUMNS = "id, username, username_key, role, disabled, created_at"


def _like_prefix(text: str) -> str:
    """A LIKE pattern for names starting with text: its own % and _ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class Client:
    client_id: str
    secret_hash: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    # RS256 or ES256 (migration 004): what the client registered, checked by Postgres.
    id_token_signed_response_alg: str = "RS256"  # noqa: S105 (an algorithm, not a secret)


@dataclass(frozen=True)
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    user_id: UUID
    username: str
    sid: str
    nonce: str | None
    scope: str
    code_challenge: str
    auth_time: int
    amr: list[str]
    expires_at: datetime
    access_token_jti: str | None


@dataclass(frozen=True)
class CodeRedeemer:
    """What a token request brings to redeem a code: the authenticated client, its redirect_uri
    and the PKCE challenge of its code_verifier (None when either is missing or malformed: it
    then matches no code), at this moment."""

    client_id: str
    redirect_uri: str | None
    code_challenge: str | None
    now: datetime


@dataclass(frozen=True)
class FoundCode:
    """A code as it was before a redemption, and whether that redemption won it."""

    code: AuthorizationCode
    used: bool
    redeemed: bool


def _at(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)


class AuthStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # users

    async def user_by_key(self, username_key: str) -> User | None:
        row = await self.pool.fetchrow(
            "SELECT id, username, password_hash, disabled FROM users WHERE username_key = $1",
            username_key,
        )
        return User(**row) if row else None

    async def user_by_id(self, user_id: UUID) -> User | None:
        row = await self.pool.fetchrow(
            "SELECT id, username, password_hash, disabled FROM users WHERE id = $1", user_id
        )
        return User(**row) if row else None

    async def add_user(
        self, username: str, username_key: str, password_hash: str, role: str = "customer"
    ) -> UUID | None:
        user_id: UUID | None = await self.pool.fetchval(
            "INSERT INTO users (username, username_key, password_hash, role) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (username_key) DO NOTHING RETURNING id",
            username,
            username_key,
            password_hash,
            role,
        )
        return user_id

    async def set_disabled(self, username_key: str, disabled: bool) -> UUID | None:
        user_id: UUID | None = await self.pool.fetchval(
            "UPDATE users SET disabled = $2, updated_at = now() WHERE username_key = $1 RETURNING id",
            username_key,
            disabled,
        )
        return user_id

    async def set_role(self, username_key: str, role: str) -> UUID | None:
        user_id: UUID | None = await self.pool.fetchval(
            "UPDATE users SET role = $2, updated_at = now() WHERE username_key = $1 RETURNING id",
            username_key,
            role,
        )
        return user_id

    async def role_of(self, user_id: UUID) -> str | None:
        role: str | None = await self.pool.fetchval("SELECT role FROM users WHERE id = $1", user_id)
        return role

    async def accounts(self, username_key: str, prefix: bool, limit: int) -> list[Account]:
        """The account with this key, or (prefix) those whose key starts with it, by name."""
        if "\x00" in username_key:
            return []
        condition = "username_key LIKE $1" if prefix else "username_key = $1"
        rows = await self.pool.fetch(
            f"SELECT {ACCOUNT_COLUMNS} FROM users WHERE {condition} ORDER BY username_key LIMIT $2",  # noqa: S608
            _like_prefix(username_key) if prefix else username_key,
            limit,
        )
        return [Account(**row) for row in rows]

    async def set_password_hash(self, user_id: UUID, password_hash: str) -> None:
        await self.pool.execute(
            "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
            user_id,
            password_hash,
        )

    # clients

    async def client(self, client_id: str) -> Client | None:
        if "\x00" in client_id:
            # No client has one, and Postgres refuses NUL in text (from a Basic header, say).
            return None
        row = await self.pool.fetchrow(
            "SELECT client_id, secret_hash, redirect_uris, post_logout_redirect_uris, "
            "id_token_signed_response_alg FROM clients WHERE client_id = $1",
            client_id,
        )
        return Client(**row) if row else None

    async def save_client(self, client: Client, replace: bool) -> bool:
        conflict = (
            "DO UPDATE SET secret_hash = EXCLUDED.secret_hash, redirect_uris = EXCLUDED.redirect_uris, "
            "post_logout_redirect_uris = EXCLUDED.post_logout_redirect_uris, "
            "id_token_signed_response_alg = EXCLUDED.id_token_signed_response_alg"
            if replace
            else "DO NOTHING"
        )
        saved = await self.pool.fetchval(
            "INSERT INTO clients (client_id, secret_hash, redirect_uris, post_logout_redirect_uris, "  # noqa: S608
            "id_token_signed_response_alg) "
            f"VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_id) {conflict} RETURNING client_id",
            client.client_id,
            client.secret_hash,
            client.redirect_uris,
            client.post_logout_redirect_uris,
            client.id_token_signed_response_alg,
        )
        return saved is not None

    # authorization codes

    async def save_code(self, code_hash: str, code: AuthorizationCode) -> bool:
        """Saves the code if its user is an account that may sign in: False, and nothing saved,
        for a disabled or removed account. One statement: the account check rides on the insert."""
        saved = await self.pool.fetchval(
            "INSERT INTO authorization_code (code_hash, client_id, redirect_uri, user_id, username, sid, "
            "nonce, scope, code_challenge, auth_time, amr, expires_at) "
            "SELECT $1, $2, $3, users.id, $5, $6, $7, $8, $9, $10, $11, $12 "
            "FROM users WHERE users.id = $4 AND NOT users.disabled "
            "RETURNING 1",
            code_hash,
            code.client_id,
            code.redirect_uri,
            code.user_id,
            code.username,
            code.sid,
            code.nonce,
            code.scope,
            code.code_challenge,
            code.auth_time,
            code.amr,
            code.expires_at,
        )
        return saved is not None

    async def redeem_code(
        self, code_hash: str, redeemer: CodeRedeemer, access_token_jti: str
    ) -> FoundCode | None:
        """The code as it was before this statement (None for an unknown code), and whether this
        statement redeemed it: marked it used, with the jti of the access token its exchange
        issues. Only a redeemer whose client, redirect_uri and PKCE challenge all match redeems,
        only a live code, and only once across replicas (`used_at IS NULL` in the UPDATE's WHERE:
        of two exchanges at once, the second waits for the first's row lock and then finds the
        code used). A request that does not match changes nothing. One statement, one round trip.
        """
        row = await self.pool.fetchrow(
            "WITH found AS ("
            "  SELECT client_id, redirect_uri, user_id, username, sid, nonce, scope, code_challenge, "
            "  auth_time, amr, expires_at, access_token_jti, used_at IS NOT NULL AS used "
            "  FROM authorization_code WHERE code_hash = $1), "
            "redeemed AS ("
            "  UPDATE authorization_code SET used_at = now(), access_token_jti = $6 "
            "  WHERE code_hash = $1 AND used_at IS NULL AND client_id = $2 AND redirect_uri = $3 "
            "  AND code_challenge = $4 AND expires_at >= $5 RETURNING 1) "
            "SELECT found.*, EXISTS (SELECT 1 FROM redeemed) AS redeemed FROM found",
            code_hash,
            redeemer.client_id,
            redeemer.redirect_uri,
            redeemer.code_challenge,
            redeemer.now,
            access_token_jti,
        )
        if row is None:
            return None
        fields = dict(row)
        used = bool(fields.pop("used"))
        redeemed = bool(fields.pop("redeemed"))
        return FoundCode(AuthorizationCode(**fields), used, redeemed)

    async def revoke_token(self, jti: str, expires_at: float) -> None:
        await self.pool.execute(
            "INSERT INTO revoked_token (jti, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            jti,
            _at(expires_at),
        )

    async def token_revoked(self, jti: str) -> bool:
        return bool(await self.pool.fetchval("SELECT 1 FROM revoked_token WHERE jti = $1", jti))

    # audit

    async def record_audit(
        self,
        event: str,
        outcome: str,
        user_id: str | None,
        username: str | None,
        ip: str,
        user_agent: str,
        operator: str | None = None,
        reason: str | None = None,
    ) -> None:
        await self.pool.execute(
            "INSERT INTO audit_event (event, outcome, user_id, username, ip, user_agent, operator, reason) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            event,
            outcome,
            user_id,
            username,
            ip,
            user_agent,
            operator,
            reason,
        )

    async def consume_step_and_record_audit(
        self,
        step: StepConsumption,
        event: str,
        outcome: str,
        ip: str,
        user_agent: str,
        *,
        user_id: str | None = None,
        username: str | None = None,
        username_key: str | None = None,
        even_if_replayed: bool = False,
    ) -> bool:
        """Consumes a step token and writes its audit row, in one statement: True the first time,
        False on a replay, whose row is written only `even_if_replayed`. `username_key`: the row
        names the account with this key, or none (the lookup rides along with the insert)."""
        consumed: bool = await self.pool.fetchval(
            STEP_CONSUMPTION_CTES + ", audited AS ("  # noqa: S608 (constant SQL)
            "  INSERT INTO audit_event (event, outcome, user_id, username, ip, user_agent) "
            "  SELECT $5, $6, COALESCE(users.id::text, $7), COALESCE(users.username, $8), $9, $10 "
            "  FROM (SELECT 1) AS one LEFT JOIN users ON users.username_key = $11 "
            "  WHERE $12 OR EXISTS (SELECT 1 FROM consumed)) "
            "SELECT EXISTS (SELECT 1 FROM consumed)",
            step.jti,
            step.expires_at,
            step.now,
            EXPIRED_TOKENS_PER_SWEEP,
            event,
            outcome,
            user_id,
            username,
            ip,
            user_agent,
            username_key,
            even_if_replayed,
        )
        return consumed

    async def audit_rows(self, user_id: str, limit: int) -> list[dict[str, object]]:
        """The user's newest `limit` rows, oldest first."""
        rows = await self.pool.fetch(
            "SELECT * FROM (SELECT id, at, event, outcome, username, ip, user_agent, operator, reason "
            "FROM audit_event WHERE user_id = $1 ORDER BY at DESC, id DESC LIMIT $2) newest "
            "ORDER BY at, id",
            user_id,
            limit,
        )
        return [dict(row) for row in rows]

    async def delete_expired(self, now: float, code_retention_seconds: float) -> None:
        """Expired rows go; a used code stays `code_retention_seconds` past its expiry, so that a
        replay can still revoke the access token its first exchange issued."""
        # consumed_step_token sweeps itself (services/common/step_tokens.py).
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute("DELETE FROM revoked_token WHERE expires_at < $1", _at(now))
            await connection.execute(
                "DELETE FROM authorization_code WHERE expires_at < $1", _at(now - code_retention_seconds)
            )
