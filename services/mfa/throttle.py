"""Sign-in throttling lives in auth (docs/architecture.md, "Sign-in throttling"); mfa asks it.

Before a code is checked, auth counts the attempt and says whether it may be checked at all;
after a right code, auth clears the account's failure counts.
"""

import logging
from typing import Protocol

from services.common.errors import DependencyUnavailable
from services.common.service_client import ServiceClient

log = logging.getLogger(__name__)


class SignInThrottle(Protocol):
    async def begin(self, account: str, ip: str) -> bool: ...

    async def succeeded(self, account: str, ip: str) -> None: ...


class AuthThrottle:
    """auth's /internal/attempts API, over a service client (iss mfa, aud auth)."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def begin(self, account: str, ip: str) -> bool:
        """Counts the attempt; True only if auth plainly says the code may be checked."""
        response = await self.client.call("/internal/attempts/begin", _body(account, ip))
        if response.status_code != 200:
            # A 404 is a missing endpoint, not an answer: never check a code without one.
            raise DependencyUnavailable(detail=f"attempts/begin answered {response.status_code}")
        try:
            allowed = response.json().get("allowed")
        except (ValueError, AttributeError) as error:
            raise DependencyUnavailable(detail="attempts/begin answered no JSON object") from error
        return allowed is True

    async def succeeded(self, account: str, ip: str) -> None:
        """Tells auth the code was right. The sign-in goes on even if auth cannot be told."""
        try:
            response = await self.client.call("/internal/attempts/succeeded", _body(account, ip))
        except DependencyUnavailable:
            log.error("could not tell auth of a right code; the failure counts stay")
            return
        if response.status_code != 200:
            log.error("attempts/succeeded answered %s; the failure counts stay", response.status_code)


def _body(account: str, ip: str) -> dict[str, str]:
    return {"kind": "otp", "account": account, "ip": ip}
