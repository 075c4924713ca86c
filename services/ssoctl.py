"""ssoctl: the administrator's command line for users, authenticators, sessions and clients.

It reads the same settings as the services (AUTH_DATABASE_URL, MFA_DATABASE_URL,
SESSION_REDIS_URL, SESSION_KEY_PREFIX, AUTH_ARGON2_*), from the environment or from the
env file that `make up` writes (.run/dev/stack.env; another one with SSO_ENV_FILE).
"""

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as redis
from pydantic_settings import SettingsConfigDict

from services.auth.accounts import Accounts, username_key
from services.auth.app import MIGRATIONS_DIR as AUTH_MIGRATIONS
from services.auth.audit import ADMIN, AuditLog
from services.auth.clients import Clients
from services.auth.passwords import Passwords
from services.auth.store import AuthStore
from services.auth.throttle_store import ThrottleStore
from services.common import db
from services.common.errors import ServiceError
from services.common.settings import FileSettings
from services.mfa.admin import MIGRATIONS_DIR as MFA_MIGRATIONS
from services.mfa.admin import audit_rows as mfa_audit_rows
from services.mfa.admin import reset_user
from services.session.admin import revoke_user

DEFAULT_ENV_FILE = Path(__file__).resolve().parent.parent / ".run" / "dev" / "stack.env"


class AdminSettings(FileSettings):
    model_config = SettingsConfigDict(extra="ignore")

    auth_database_url: str = "postgresql://postgres@127.0.0.1:5432/sso"
    mfa_database_url: str = "postgresql://postgres@127.0.0.1:5432/sso"
    session_redis_url: str = "redis://127.0.0.1:6379/0"
    session_key_prefix: str = "sso:"
    auth_redis_url: str = "redis://127.0.0.1:6379/0"
    auth_redis_key_prefix: str = "sso:auth:"
    auth_argon2_memory_kib: int = 19456
    auth_argon2_iterations: int = 2
    auth_argon2_parallelism: int = 1


class CommandError(Exception):
    """A refusal to print for the administrator, with exit status 1."""


def load_settings() -> AdminSettings:
    env_file = Path(os.environ.get("SSO_ENV_FILE", DEFAULT_ENV_FILE))
    if "SSO_ENV_FILE" in os.environ and not env_file.is_file():
        raise CommandError(f"SSO_ENV_FILE {env_file} does not exist")
    return AdminSettings(_env_file=env_file if env_file.is_file() else None)  # type: ignore[call-arg]


class Admin:
    """Each command runs against the owning service's own store, as that service would."""

    def __init__(self, settings: AdminSettings) -> None:
        self.settings = settings

    async def _auth(self) -> tuple[asyncpg.Pool, AuthStore]:
        pool = await _connect(self.settings.auth_database_url, "auth")
        return pool, AuthStore(pool)

    def _accounts(self, store: AuthStore) -> Accounts:
        s = self.settings
        passwords = Passwords(
            s.auth_argon2_memory_kib, s.auth_argon2_iterations, s.auth_argon2_parallelism, 1
        )
        return Accounts(store, passwords)

    async def _revoke_sessions(self, user_id: str) -> int:
        client = redis.from_url(self.settings.session_redis_url)
        try:
            return await revoke_user(client, self.settings.session_key_prefix, user_id)
        except redis.RedisError as error:
            raise CommandError(f"cannot reach Redis: {type(error).__name__}") from error
        finally:
            await client.aclose()

    async def migrate(self) -> str:
        auth = await db.migrate(self.settings.auth_database_url, "auth", AUTH_MIGRATIONS)
        mfa = await db.migrate(self.settings.mfa_database_url, "mfa", MFA_MIGRATIONS)
        return f"migrations applied: auth {auth or 'none'}, mfa {mfa or 'none'}"

    async def user_add(self, name: str, password: str) -> str:
        pool, store = await self._auth()
        try:
            user_id = await self._accounts(store).add(name, password)
        finally:
            await pool.close()
        return f"user {name} added (id {user_id})"

    async def user_disable(self, name: str) -> str:
        pool, store = await self._auth()
        try:
            user_id = await self._accounts(store).set_disabled(name, True)
            await AuditLog(store).record("user.disabled", "ok", ADMIN, user_id=user_id, username=name)
        finally:
            await pool.close()
        ended = await self._revoke_sessions(str(user_id))
        return f"user {name} disabled; {ended} session(s) ended"

    async def user_unlock(self, name: str) -> str:
        pool, store = await self._auth()
        try:
            user = await self._accounts(store).find(name)
            client = redis.from_url(self.settings.auth_redis_url)
            try:
                was_locked = await ThrottleStore(client, self.settings.auth_redis_key_prefix).unlock(
                    username_key(name)
                )
            except redis.RedisError as error:
                raise CommandError(f"cannot reach Redis: {type(error).__name__}") from error
            finally:
                await client.aclose()
            await AuditLog(store).record("unlock", "ok", ADMIN, user_id=user.id, username=user.username)
        finally:
            await pool.close()
        return f"{name}: {'lock lifted' if was_locked else 'was not locked'}; failure counters cleared"

    async def user_enable(self, name: str) -> str:
        pool, store = await self._auth()
        try:
            await self._accounts(store).set_disabled(name, False)
        finally:
            await pool.close()
        return f"user {name} enabled"

    async def _user_id(self, name: str) -> str:
        pool, store = await self._auth()
        try:
            return str((await self._accounts(store).find(name)).id)
        finally:
            await pool.close()

    async def mfa_reset(self, name: str) -> str:
        user_id = await self._user_id(name)
        pool = await _connect(self.settings.mfa_database_url, "mfa")
        try:
            removed = await reset_user(pool, user_id, username=name, actor="ssoctl", ip="local")
        finally:
            await pool.close()
        ended = await self._revoke_sessions(user_id)
        what = "authenticator removed" if removed else "no authenticator was set up"
        return f"{name}: {what}; the next sign-in sets one up again; {ended} session(s) ended"

    async def session_revoke(self, name: str) -> str:
        user_id = await self._user_id(name)
        ended = await self._revoke_sessions(user_id)
        await self._audit("session.revoked", "ok", user_id, name)
        return f"{name}: {ended} session(s) ended"

    async def _audit(self, event: str, outcome: str, user_id: str, name: str) -> None:
        pool, store = await self._auth()
        try:
            await AuditLog(store).record(event, outcome, ADMIN, user_id=user_id, username=name)
        finally:
            await pool.close()

    async def audit(self, name: str) -> str:
        user_id = await self._user_id(name)
        pool, store = await self._auth()
        try:
            rows = await store.audit_rows(user_id)
        finally:
            await pool.close()
        mfa_pool = await _connect(self.settings.mfa_database_url, "mfa")
        try:
            rows += await mfa_audit_rows(mfa_pool, user_id)
        finally:
            await mfa_pool.close()
        rows.sort(key=lambda row: row["at"])  # type: ignore[arg-type,return-value]
        return (
            "\n".join(
                f"{row['at'].isoformat()} {row['event']} {row['outcome']} ip={row['ip']} "  # type: ignore[attr-defined]
                f"user_agent={json.dumps(row['user_agent'] or '')}"
                for row in rows
            )
            or f"{name}: no audit rows"
        )

    async def client_add(
        self, client_id: str, redirect_uris: list[str], post_logout_uris: list[str], replace: bool
    ) -> str:
        pool, store = await self._auth()
        try:
            secret = await Clients(store).register(client_id, redirect_uris, post_logout_uris, replace)
        finally:
            await pool.close()
        return json.dumps({"client_id": client_id, "client_secret": secret})


async def _connect(dsn: str, schema: str) -> asyncpg.Pool:
    try:
        return await db.create_pool(dsn, schema, min_size=1, max_size=2)
    except (OSError, asyncpg.PostgresError) as error:
        raise CommandError(
            f"cannot reach Postgres for {schema}: {error} (is the stack up? make up)"
        ) from error


def read_password(stdin_flag: bool) -> str:
    if not stdin_flag:
        raise CommandError("give the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandError("no password on standard input")
    return password


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ssoctl", description=__doc__.splitlines()[0] if __doc__ else None)
    areas = top.add_subparsers(dest="area", required=True)

    areas.add_parser("migrate", help="apply the auth and mfa schema migrations")

    user = areas.add_parser("user", help="customer accounts").add_subparsers(dest="action", required=True)
    add = user.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    for action, text in (
        ("disable", "disable a user and end their sessions"),
        ("enable", "enable a user"),
        ("unlock", "lift a sign-in lock and clear the failure counters"),
    ):
        user.add_parser(action, help=text).add_argument("name")

    mfa = areas.add_parser("mfa", help="authenticators").add_subparsers(dest="action", required=True)
    mfa.add_parser("reset", help="remove a user's authenticator").add_argument("name")

    session = areas.add_parser("session", help="SSO sessions").add_subparsers(dest="action", required=True)
    session.add_parser("revoke", help="end every session of a user").add_argument("name")

    areas.add_parser("audit", help="a user's audit trail, oldest first").add_argument("name")

    client = areas.add_parser("client", help="OIDC clients").add_subparsers(dest="action", required=True)
    client_add = client.add_parser("add", help="register a client; prints its id and secret as JSON")
    client_add.add_argument("name")
    client_add.add_argument("--redirect-uri", action="append", required=True, dest="redirect_uris")
    client_add.add_argument(
        "--post-logout-redirect-uri", action="append", default=[], dest="post_logout_uris"
    )
    client_add.add_argument("--replace", action="store_true", help="update an existing client, new secret")
    return top


def command(args: argparse.Namespace, admin: Admin) -> Callable[[], Awaitable[str]]:
    commands: dict[tuple[str, str | None], Callable[[], Awaitable[str]]] = {
        ("migrate", None): admin.migrate,
        ("audit", None): lambda: admin.audit(args.name),
        ("user", "add"): lambda: admin.user_add(args.name, read_password(args.password_stdin)),
        ("user", "disable"): lambda: admin.user_disable(args.name),
        ("user", "enable"): lambda: admin.user_enable(args.name),
        ("user", "unlock"): lambda: admin.user_unlock(args.name),
        ("mfa", "reset"): lambda: admin.mfa_reset(args.name),
        ("session", "revoke"): lambda: admin.session_revoke(args.name),
        ("client", "add"): lambda: admin.client_add(
            args.name, args.redirect_uris, args.post_logout_uris, args.replace
        ),
    }
    return commands[(args.area, getattr(args, "action", None))]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        run: Any = command(args, Admin(load_settings()))
        print(asyncio.run(run()))
    except (CommandError, ServiceError) as error:
        message = error.message if isinstance(error, ServiceError) and not error.detail else str(error)
        print(f"ssoctl: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
