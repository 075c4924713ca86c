"""auth's internal API: sign-in throttling for mfa, the audit trail for the portal.

docs/architecture.md, "Sign-in throttling" and "Audit".
"""

import unicodedata
from typing import Annotated, Literal

from pydantic import Field, StrictBool, StringConstraints

from .endpoint import Contract, ContractClient, Endpoint

Ip = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def account_key(username: str) -> str:
    """CodeAttempt.account: the username key auth counts on (NFKC, trimmed, case-folded)."""
    return unicodedata.normalize("NFKC", username).strip().casefold()


class CodeAttempt(Contract):
    kind: Literal["otp"]
    account: str = Field(min_length=1, max_length=512)  # the username key
    ip: Ip
    # The otp step token's `device` claim: the browser's device id, when it is known to the account.
    device: str | None = Field(default=None, min_length=1, max_length=64)


# The `complete` step token's claim (mfa → auth) after a right code at sign-in: a CodeAttempt,
# the browser whose OTP failure counts auth clears when it consumes that step. In place of
# ATTEMPT_SUCCEEDED, which is left for right codes that end in no complete step (a renewal of
# recovery codes). A set-up code, never counted, carries none.
CLEAR_THROTTLE_CLAIM = "clear_throttle"


class AttemptDecision(Contract):
    # Only a plain true lets a code be checked: "yes" or 1 is an answer outside the contract.
    allowed: StrictBool
    # A refused attempt's wait, for the customer's message: the seconds the lock has left, -1
    # until an unlock. None when allowed.
    locked_seconds: int | None = Field(default=None, ge=-1)


class Acknowledged(Contract):
    """An empty answer: `{}`."""


class AuditEntry(Contract):
    event: Literal["logout", "session.revoked"]
    outcome: str = Field(min_length=1, max_length=32, pattern=r"^[a-z_]+$")
    user_id: str | None = Field(default=None, max_length=64)
    username: str | None = Field(default=None, max_length=256)
    ip: Ip
    user_agent: str = Field(default="", max_length=256)
    # An admin action of a service without a database (session): who did it, and why.
    operator: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=500)


class ChangePassword(Contract):
    """The signed-in customer's own password: the current one, checked and counted like a sign-in."""

    user_id: str = Field(min_length=1, max_length=64)
    # This device's SSO session (the portal session's sid): it stays; every other one ends.
    keep_sid: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
    current_password: str = Field(min_length=1, max_length=1024)
    # Up to the policy's maximum and one more, so auth itself says "too long".
    new_password: str = Field(min_length=1, max_length=1025)
    ip: Ip
    user_agent: str = Field(default="", max_length=256)


PasswordChangeOutcome = Literal[
    "changed",
    "wrong_current",
    "locked",
    "same_as_current",
    "too_short",
    "too_long",
    "contains_username",
    "common",
]


class PasswordChanged(Contract):
    """How it went: only `changed` changed anything; `sessions_ended` other devices were signed out."""

    outcome: PasswordChangeOutcome
    sessions_ended: int = 0


# Who may write which event: the portal its logouts, session the revocations an admin asked for.
AUDIT_EVENTS_BY_CALLER = {"portal": frozenset({"logout"}), "session": frozenset({"session.revoked"})}


CALLEE = "auth"

ATTEMPT_BEGIN = Endpoint(CALLEE, "/internal/attempts/begin", frozenset({"mfa"}), CodeAttempt, AttemptDecision)
ATTEMPT_SUCCEEDED = Endpoint(
    CALLEE, "/internal/attempts/succeeded", frozenset({"mfa"}), CodeAttempt, Acknowledged
)
PASSWORD_CHANGE = Endpoint(
    CALLEE, "/internal/password/change", frozenset({"portal"}), ChangePassword, PasswordChanged
)
AUDIT_RECORD = Endpoint(
    CALLEE, "/internal/audit", frozenset(AUDIT_EVENTS_BY_CALLER), AuditEntry, Acknowledged, 201
)


class AuthInternalClient(ContractClient):
    """auth's /internal/ API, as mfa and the portal call it."""

    async def begin_attempt(self, account: str, ip: str, device: str | None = None) -> AttemptDecision:
        """Counts the attempt; only `allowed` (a plain true from auth) lets the code be checked."""
        return await self.expect(
            ATTEMPT_BEGIN, lambda: CodeAttempt(kind="otp", account=account, ip=ip, device=device)
        )

    async def attempt_succeeded(self, account: str, ip: str, device: str | None = None) -> None:
        """A right code outside sign-in; a sign-in's is cleared from its complete step instead."""
        await self.expect(
            ATTEMPT_SUCCEEDED, lambda: CodeAttempt(kind="otp", account=account, ip=ip, device=device)
        )

    async def change_password(self, request: ChangePassword) -> PasswordChanged:
        return await self.expect(PASSWORD_CHANGE, lambda: request)

    async def record_logout(
        self, outcome: str, *, user_id: str | None, username: str | None, ip: str, user_agent: str
    ) -> None:
        await self.expect(
            AUDIT_RECORD,
            lambda: AuditEntry(
                event="logout",
                outcome=outcome,
                user_id=user_id,
                username=username,
                ip=ip,
                user_agent=user_agent,
            ),
        )

    async def record_session_revoked(
        self, ended: int, *, user_id: str, username: str, ip: str, user_agent: str, operator: str, reason: str
    ) -> None:
        """The session service's admin action, in auth's trail: who ended the user's sessions, and why."""
        await self.expect(
            AUDIT_RECORD,
            lambda: AuditEntry(
                event="session.revoked",
                outcome="ok" if ended else "none_live",
                user_id=user_id,
                username=username,
                ip=ip,
                user_agent=user_agent,
                operator=operator,
                reason=reason or None,
            ),
        )
