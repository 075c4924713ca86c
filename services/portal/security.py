"""The customer's Security page: what it reads and changes, each through the service that owns it.

The portal owns no data: the authenticator is mfa's, the password auth's, the sessions the
session service's. Each is one internal call with its contract (services/contracts).
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from babel.dates import format_datetime

from services.contracts.admin import MfaStatus
from services.contracts.auth import AuthInternalClient, ChangePassword, PasswordChanged
from services.contracts.mfa import MfaClient


class AccountSecurity(Protocol):
    """What the Security page asks of the other services about the signed-in customer."""

    async def mfa_status(self, user_id: str) -> MfaStatus: ...

    async def change_password(self, request: ChangePassword) -> PasswordChanged: ...


class ServiceAccountSecurity:
    """AccountSecurity over the services' contracts, with the portal's service token."""

    def __init__(self, mfa: MfaClient, auth: AuthInternalClient) -> None:
        self.mfa = mfa
        self.auth = auth

    async def mfa_status(self, user_id: str) -> MfaStatus:
        return await self.mfa.status(user_id)

    async def change_password(self, request: ChangePassword) -> PasswordChanged:
        return await self.auth.change_password(request)


@dataclass(frozen=True)
class Moment:
    """A time as the page shows it: UTC in the customer's language; a script puts it in their zone."""

    iso: str
    text: str


def moment(value: datetime | int, language: str) -> Moment:
    when = datetime.fromtimestamp(value, UTC) if isinstance(value, int) else value.astimezone(UTC)
    return Moment(
        iso=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        text=format_datetime(when, "d MMMM y, HH:mm 'UTC'", tzinfo=UTC, locale=language),
    )
