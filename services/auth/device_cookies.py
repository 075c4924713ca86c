"""OWASP's device cookies: a browser that completed a sign-in for an account is known to it.

A known browser's failures are counted on its own (throttle_store.py), so an attacker who
locks the account out of unknown browsers does not lock the customer out of theirs.
The cookie holds `<device id>.<issued at>.<HMAC>`; the HMAC binds it to the account (the
username key) with a secret of auth's, so it cannot be forged, moved to another account or
kept beyond its lifetime.
"""

import hashlib
import hmac

from services.common.clock import Clock, random_token

DEVICE_COOKIE = "device"
DEVICE_ID_LENGTH = 22  # random_token(16)


class DeviceCookies:
    def __init__(self, secret: bytes, clock: Clock, lifetime_seconds: int) -> None:
        self.secret = secret
        self.clock = clock
        self.lifetime_seconds = lifetime_seconds

    def _mac(self, account: str, device: str, issued_at: int) -> str:
        message = f"{account}\x00{device}\x00{issued_at}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def issue(self, account: str) -> str:
        """A new cookie value for this account, after a completed sign-in."""
        device, issued_at = random_token(16), int(self.clock.now())
        return f"{device}.{issued_at}.{self._mac(account, device, issued_at)}"

    def device_for(self, cookie: str | None, account: str) -> str | None:
        """The device id when the cookie is ours, live and issued for this account; else None."""
        if not cookie or len(cookie) > 128:
            return None
        device, _dot, rest = cookie.partition(".")
        issued, _dot, mac = rest.partition(".")
        if len(device) != DEVICE_ID_LENGTH or not issued.isdigit() or len(issued) > 12:
            return None
        issued_at = int(issued)
        if not 0 <= self.clock.now() - issued_at <= self.lifetime_seconds:
            return None
        if not hmac.compare_digest(mac.encode(), self._mac(account, device, issued_at).encode()):
            return None
        return device
