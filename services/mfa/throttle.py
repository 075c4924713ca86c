"""Sign-in throttling lives in auth (docs/architecture.md, "Sign-in throttling"); mfa asks it.

Before a code is checked, auth counts the attempt and says whether it may be checked at all.
After a right code auth clears the browser's failure counts: at sign-in when it consumes the
complete step (the `clear_throttle` claim, login_step.py); elsewhere (a renewal of recovery
codes) when told so here.
"""

import logging
from typing import Protocol

from services.common.errors import DependencyUnavailable
from services.contracts.auth import AttemptDecision, AuthInternalClient

log = logging.getLogger(__name__)


class SignInThrottle(Protocol):
    """`device`: the otp step token's claim, so a known browser's codes count on their own."""

    async def admit(self, account: str, ip: str, device: str | None = None) -> AttemptDecision: ...

    async def succeeded(self, account: str, ip: str, device: str | None = None) -> None: ...


class AuthThrottle:
    """auth's /internal/attempts API (iss mfa, aud auth)."""

    def __init__(self, auth: AuthInternalClient) -> None:
        self.auth = auth

    async def admit(self, account: str, ip: str, device: str | None = None) -> AttemptDecision:
        """Counts the attempt; the code may be checked only if auth plainly says `allowed`. When
        refused, the decision carries the lock's wait for the customer's message.

        Without an answer in the contract (a 404 is a missing endpoint), no code is checked:
        DependencyUnavailable.
        """
        return await self.auth.begin_attempt(account, ip, device)

    async def succeeded(self, account: str, ip: str, device: str | None = None) -> None:
        """Tells auth the code was right. The sign-in goes on even if auth cannot be told."""
        try:
            await self.auth.attempt_succeeded(account, ip, device)
        except DependencyUnavailable:
            log.error("could not tell auth of a right code; the failure counts stay")
