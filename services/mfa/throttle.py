"""Sign-in throttling lives in auth (docs/architecture.md, "Sign-in throttling"); mfa asks it.

Before a code is checked, auth counts the attempt and says whether it may be checked at all;
after a right code, auth clears the account's failure counts.
"""

import logging
from typing import Protocol

from services.common.errors import DependencyUnavailable
from services.contracts.auth import AuthInternalClient

log = logging.getLogger(__name__)


class SignInThrottle(Protocol):
    async def begin(self, account: str, ip: str) -> bool: ...

    async def succeeded(self, account: str, ip: str) -> None: ...


class AuthThrottle:
    """auth's /internal/attempts API (iss mfa, aud auth)."""

    def __init__(self, auth: AuthInternalClient) -> None:
        self.auth = auth

    async def begin(self, account: str, ip: str) -> bool:
        """Counts the attempt; True only if auth plainly says the code may be checked.

        Without an answer in the contract (a 404 is a missing endpoint), no code is checked:
        DependencyUnavailable.
        """
        return await self.auth.begin_attempt(account, ip)

    async def succeeded(self, account: str, ip: str) -> None:
        """Tells auth the code was right. The sign-in goes on even if auth cannot be told."""
        try:
            await self.auth.attempt_succeeded(account, ip)
        except DependencyUnavailable:
            log.error("could not tell auth of a right code; the failure counts stay")
