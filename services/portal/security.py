"""The customer's Security page: what it reads and changes, each through the service that owns it.

The portal owns no data: the authenticator is mfa's, the password auth's, the sessions the
session service's. Each is one internal call with its contract (services/contracts).
"""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from babel.dates import format_datetime

from services.common.i18n import _
from services.contracts.admin import MfaStatus
from services.contracts.auth import AuthInternalClient, ChangePassword, PasswordChanged
from services.contracts.mfa import MfaClient, RecoveryCodesRenewed, RenewRecoveryCodes
from services.contracts.session import SessionClient, UserSession


class AccountSecurity(Protocol):
    """What the Security page asks of the other services about the signed-in customer."""

    async def mfa_status(self, user_id: str) -> MfaStatus: ...

    async def change_password(self, request: ChangePassword) -> PasswordChanged: ...

    async def sessions_of(self, user_id: str) -> list[UserSession]: ...

    async def end_session_of(self, user_id: str, sid: str) -> bool: ...

    async def renew_recovery_codes(self, request: RenewRecoveryCodes) -> RecoveryCodesRenewed: ...


class ServiceAccountSecurity:
    """AccountSecurity over the services' contracts, with the portal's service token."""

    def __init__(self, mfa: MfaClient, auth: AuthInternalClient, sessions: SessionClient) -> None:
        self.mfa = mfa
        self.auth = auth
        self.sessions = sessions

    async def mfa_status(self, user_id: str) -> MfaStatus:
        return await self.mfa.status(user_id)

    async def change_password(self, request: ChangePassword) -> PasswordChanged:
        return await self.auth.change_password(request)

    async def sessions_of(self, user_id: str) -> list[UserSession]:
        return await self.sessions.sessions_of(user_id)

    async def end_session_of(self, user_id: str, sid: str) -> bool:
        return await self.sessions.end_session_of(user_id, sid)

    async def renew_recovery_codes(self, request: RenewRecoveryCodes) -> RecoveryCodesRenewed:
        return await self.mfa.renew_recovery_codes(request)


class SessionHandles:
    """What the page names a session by: an HMAC of its sid with the portal's own secret, so the
    page shows no session's id, ref or sid, and a handle means nothing outside this portal."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def handle(self, sid: str) -> str:
        return hmac.new(self.secret, sid.encode(), hashlib.sha256).hexdigest()[:32]

    def find(self, handle: str, sessions: list[UserSession]) -> UserSession | None:
        """The session of these (the signed-in customer's own) that the handle names, if any."""
        for session in sessions:
            if hmac.compare_digest(self.handle(session.sid).encode(), handle.encode()):
                return session
        return None


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


def device_text(label: str) -> str:
    """auth's device label ("Chrome on Windows", "Android device", "Unknown device", English as
    stored) in the customer's language; browser and system names stay as they are."""
    browser, on, system = label.partition(" on ")
    if on:
        return _("%(browser)s on %(system)s") % {"browser": browser, "system": system}
    if label in ("", "Unknown device"):
        return str(_("Unknown device"))
    if label.endswith(" device"):
        return _("%(system)s device") % {"system": label.removesuffix(" device")}
    return label
