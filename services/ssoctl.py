"""ssoctl: the administrator's command line, a client of the services' admin API.

It needs the admin key and the services' addresses, nothing else: SSO_ADMIN_KEY_FILE,
SSO_AUTH_URL, SSO_MFA_URL and SSO_SESSION_URL, from the environment or from the env file that
`make up` writes (.run/dev/admin.env; another one with SSO_ENV_FILE). No database, no Redis:
each service changes its own data and audits who asked (--operator, else $USER) and why.
"""

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from pydantic_settings import SettingsConfigDict

from services.common.errors import ServiceError
from services.common.http_client import HttpxPeerClient
from services.common.keys import SigningKey
from services.common.service_client import ADMIN_CALLER
from services.common.settings import FileSettings
from services.common.tokens import TokenIssuer
from services.contracts.admin import (
    ID_TOKEN_ALGS,
    ROLES,
    AddClient,
    AddUser,
    AdminApi,
    AuditEvent,
    Origin,
    SetRole,
    UserAction,
)

DEFAULT_ENV_FILE = Path(__file__).resolve().parent.parent / ".run" / "dev" / "admin.env"


class AdminSettings(FileSettings):
    model_config = SettingsConfigDict(env_prefix="SSO_", extra="ignore")

    # The admin key's private half (PEM). The services know its public half
    # (<SVC>_ADMIN_PUBLIC_KEY_FILES) and accept its tokens under /internal/admin/ only.
    admin_key_file: Path | None = None
    auth_url: str = "http://127.0.0.1:8101"
    mfa_url: str = "http://127.0.0.1:8102"
    session_url: str = "http://127.0.0.1:8103"


class CommandError(Exception):
    """A refusal to print for the administrator, with exit status 1."""


def load_settings() -> AdminSettings:
    env_file = Path(os.environ.get("SSO_ENV_FILE", DEFAULT_ENV_FILE))
    if "SSO_ENV_FILE" in os.environ and not env_file.is_file():
        raise CommandError(f"SSO_ENV_FILE {env_file} does not exist")
    return AdminSettings(_env_file=env_file if env_file.is_file() else None)  # type: ignore[call-arg]


def admin_key(settings: AdminSettings) -> SigningKey:
    if settings.admin_key_file is None:
        raise CommandError("SSO_ADMIN_KEY_FILE is not set (is the stack up? make up)")
    try:
        return SigningKey.from_file(settings.admin_key_file)
    except (OSError, ValueError) as error:
        raise CommandError(f"cannot read the admin key {settings.admin_key_file}: {error}") from error


def operator_name(given: str | None) -> str:
    name = given or os.environ.get("USER") or _login_name()
    if not name:
        raise CommandError("who is asking? give --operator NAME (or set $USER)")
    return name


def _login_name() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


def read_password(stdin_flag: bool) -> str:
    if not stdin_flag:
        raise CommandError("give the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandError("no password on standard input")
    return password


def audit_line(row: AuditEvent) -> str:
    line = (
        f"{row.at.isoformat()} {row.event} {row.outcome} ip={row.ip} "
        f"user_agent={json.dumps(row.user_agent or '')}"
    )
    if row.operator:
        line += f" operator={row.operator} reason={json.dumps(row.reason or '')}"
    return line


class Commands:
    """One method per command; each returns what to print."""

    def __init__(self, api: AdminApi, args: argparse.Namespace) -> None:
        self.api = api
        self.args = args

    @property
    def origin(self) -> Origin:
        return Origin(operator=operator_name(self.args.operator), reason=self.args.reason or "")

    def _action(self) -> UserAction:
        return UserAction(**self.origin.model_dump(), username=self.args.name)

    async def user_add(self) -> str:
        password = read_password(self.args.password_stdin)
        user = await self.api.add_user(
            AddUser(
                **self.origin.model_dump(), username=self.args.name, password=password, role=self.args.role
            )
        )
        return f"user {user.username} added (id {user.user_id}, role {user.role})"

    async def user_disable(self) -> str:
        user, ended = await self.api.disable(self._action())
        return f"user {user.username} disabled; {ended} session(s) ended"

    async def user_enable(self) -> str:
        user = await self.api.enable(self._action())
        return f"user {user.username} enabled"

    async def user_unlock(self) -> str:
        unlocked = await self.api.unlock(self._action())
        what = "lock lifted" if unlocked.was_locked else "was not locked"
        return f"{unlocked.user.username}: {what}; failure counters cleared"

    async def user_role(self) -> str:
        user = await self.api.set_role(
            SetRole(**self.origin.model_dump(), username=self.args.name, role=self.args.role)
        )
        return f"{user.username}: role {user.role}"

    async def user_show(self) -> str:
        user = await self.api.user(self.args.name)
        mfa = await self.api.mfa_status(user)
        sessions = await self.api.sessions(user)
        return json.dumps(
            {
                **user.model_dump(mode="json"),
                "mfa": mfa.model_dump(mode="json"),
                "sessions": [session.model_dump(mode="json") for session in sessions.sessions],
            },
            indent=2,
        )

    async def mfa_reset(self) -> str:
        user = await self.api.user(self.args.name)
        reset, ended = await self.api.reset_mfa(user, self.origin)
        what = "authenticator removed" if reset.removed else "no authenticator was set up"
        return f"{user.username}: {what}; the next sign-in sets one up again; {ended} session(s) ended"

    async def session_list(self) -> str:
        user = await self.api.user(self.args.name)
        sessions = (await self.api.sessions(user)).sessions
        return json.dumps([session.model_dump(mode="json") for session in sessions], indent=2)

    async def session_revoke(self) -> str:
        user = await self.api.user(self.args.name)
        revoked = await self.api.revoke_sessions_of(user, self.origin)
        return f"{user.username}: {revoked.ended} session(s) ended"

    async def audit(self) -> str:
        user = await self.api.user(self.args.name)
        rows = await self.api.audit(user)
        return "\n".join(audit_line(row) for row in rows) or f"{user.username}: no audit rows"

    async def client_add(self) -> str:
        args = self.args
        credentials = await self.api.add_client(
            AddClient(
                **self.origin.model_dump(),
                client_id=args.name,
                redirect_uris=args.redirect_uris,
                post_logout_redirect_uris=args.post_logout_uris,
                id_token_signed_response_alg=args.id_token_alg,
                replace=args.replace,
            )
        )
        return credentials.model_dump_json()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ssoctl", description=__doc__.splitlines()[0] if __doc__ else None)
    who = argparse.ArgumentParser(add_help=False)
    who.add_argument("--operator", help="who is asking, for the audit trail (default: $USER)")
    who.add_argument("--reason", help="why, for the audit trail")
    areas = top.add_subparsers(dest="area", required=True)

    user = areas.add_parser("user", help="accounts").add_subparsers(dest="action", required=True)
    add = user.add_parser("add", help="add a user", parents=[who])
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--role", choices=ROLES, default="customer", help="support: may use the support desk")
    for action, text in (
        ("disable", "disable a user and end their sessions"),
        ("enable", "enable a user"),
        ("unlock", "lift a sign-in lock and clear the failure counters"),
        ("show", "a user's account, authenticator and sessions, as JSON"),
    ):
        user.add_parser(action, help=text, parents=[who]).add_argument("name")
    role = user.add_parser("role", help="give a user a role", parents=[who])
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)

    mfa = areas.add_parser("mfa", help="authenticators").add_subparsers(dest="action", required=True)
    mfa.add_parser("reset", help="remove a user's authenticator", parents=[who]).add_argument("name")

    session = areas.add_parser("session", help="SSO sessions").add_subparsers(dest="action", required=True)
    session.add_parser("revoke", help="end every session of a user", parents=[who]).add_argument("name")
    session.add_parser("list", help="a user's live SSO sessions, as JSON", parents=[who]).add_argument("name")

    audit = areas.add_parser("audit", help="a user's audit trail (auth and mfa), oldest first", parents=[who])
    audit.add_argument("name")

    client = areas.add_parser("client", help="OIDC clients").add_subparsers(dest="action", required=True)
    client_add = client.add_parser(
        "add", help="register a client; prints its id and secret as JSON", parents=[who]
    )
    client_add.add_argument("name")
    client_add.add_argument("--redirect-uri", action="append", required=True, dest="redirect_uris")
    client_add.add_argument(
        "--post-logout-redirect-uri", action="append", default=[], dest="post_logout_uris"
    )
    client_add.add_argument(
        "--id-token-signed-response-alg",
        choices=ID_TOKEN_ALGS,
        default="RS256",
        dest="id_token_alg",
        help="how its id_tokens are signed: RS256 (the OIDC default) or ES256 (the portal)",
    )
    client_add.add_argument("--replace", action="store_true", help="update an existing client, new secret")
    return top


def command(args: argparse.Namespace, commands: Commands) -> Callable[[], Awaitable[str]]:
    name = args.area if getattr(args, "action", None) is None else f"{args.area}_{args.action}"
    run: Callable[[], Awaitable[str]] = getattr(commands, name)
    return run


async def run(args: argparse.Namespace, settings: AdminSettings) -> str:
    issuer = TokenIssuer(admin_key(settings), ADMIN_CALLER)
    # The services are on the operator's own network: a proxy from the environment must not get in between.
    async with HttpxPeerClient(httpx.AsyncClient(trust_env=False)) as http:
        api = AdminApi(
            http,
            issuer,
            auth_url=settings.auth_url,
            mfa_url=settings.mfa_url,
            session_url=settings.session_url,
        )
        return await command(args, Commands(api, args))()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        print(asyncio.run(run(args, load_settings())))
    except (CommandError, ServiceError) as error:
        message = error.message if isinstance(error, ServiceError) else str(error)
        print(f"ssoctl: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
