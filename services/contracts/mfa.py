"""mfa's internal API for the customer's own pages: the portal's Security page.

The status answer is the support desk's model (services.contracts.admin.MfaStatus), so both read
the authenticator the same way and a field added there (recovery codes left) reaches both.
"""

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from .admin import MfaStatus, UserId, Username, UserRef
from .auth import Ip
from .endpoint import Contract, ContractClient, Endpoint

CALLEE = "mfa"

OWN_MFA_STATUS = Endpoint(
    CALLEE, "/internal/mfa/status", frozenset({"portal"}), UserRef, MfaStatus, idempotent=True
)


# A recovery code as shown: three groups of four from mfa's alphabet (no 0/O, 1/I/L).
RECOVERY_CODE_PATTERN = r"^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$"
RecoveryCode = Annotated[str, StringConstraints(pattern=RECOVERY_CODE_PATTERN)]
RECOVERY_CODES_PER_SET = 10


class RenewRecoveryCodes(Contract):
    """A new set for the customer signed in to the portal, given a current code from their app.

    The code is checked as at sign-in: auth counts it on the account's code lockout (the
    account is the username's key, CodeAttempt.account), and each step is good once."""

    user_id: UserId
    username: Username
    code: str = Field(max_length=32)
    ip: Ip
    user_agent: str = Field(default="", max_length=256)


RenewOutcome = Literal["renewed", "wrong_code", "code_already_used", "clock_skew", "locked", "not_enrolled"]


class RecoveryCodesRenewed(Contract):
    """renewed: `codes` replaced every old one, for a one-time display (never stored in the clear).
    clock_skew: `skew_seconds` the phone is off (> 0 ahead); locked: `locked_seconds` (-1 until an
    unlock, 0 if unknown)."""

    outcome: RenewOutcome
    codes: list[RecoveryCode] = Field(default_factory=list, max_length=RECOVERY_CODES_PER_SET)
    skew_seconds: int | None = None
    locked_seconds: int | None = Field(default=None, ge=-1)


RENEW_RECOVERY_CODES = Endpoint(
    CALLEE,
    "/internal/mfa/recovery-codes/renew",
    frozenset({"portal"}),
    RenewRecoveryCodes,
    RecoveryCodesRenewed,
)


class MfaClient(ContractClient):
    """mfa's /internal/ API, as the portal calls it."""

    async def status(self, user_id: str) -> MfaStatus:
        """The customer's authenticator: set up since when, or not."""
        return await self.expect(OWN_MFA_STATUS, lambda: UserRef(user_id=user_id))

    async def renew_recovery_codes(self, request: RenewRecoveryCodes) -> RecoveryCodesRenewed:
        """Never sent twice: a second send would spend the code's step and make another set."""
        return await self.expect(RENEW_RECOVERY_CODES, lambda: request)
