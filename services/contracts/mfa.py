"""mfa's internal API for the customer's own pages: the portal's Security page.

The answer is the support desk's model (services.contracts.admin.MfaStatus), so both read the
authenticator the same way and a field added there (recovery codes left) reaches both.
"""

from .admin import MfaStatus, UserRef
from .endpoint import ContractClient, Endpoint

CALLEE = "mfa"

OWN_MFA_STATUS = Endpoint(
    CALLEE, "/internal/mfa/status", frozenset({"portal"}), UserRef, MfaStatus, idempotent=True
)


class MfaClient(ContractClient):
    """mfa's /internal/ API, as the portal calls it."""

    async def status(self, user_id: str) -> MfaStatus:
        """The customer's authenticator: set up since when, or not."""
        return await self.expect(OWN_MFA_STATUS, lambda: UserRef(user_id=user_id))
