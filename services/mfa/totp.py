"""TOTP (RFC 6238) as the authenticator apps expect it: SHA1, 6 digits, 30 s."""

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import pyotp

SECRET_BYTES = 20  # 160 bits, the size RFC 4226 recommends; 32 base32 characters
CODE_PATTERN = re.compile(r"[0-9]{6}")


@dataclass(frozen=True)
class TotpOptions:
    algorithm: str = "SHA1"
    digits: int = 6
    period: int = 30


class TotpVerifier:
    def __init__(
        self,
        issuer: str,
        window_steps: int = 1,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        options: TotpOptions | None = None,
    ) -> None:
        self.issuer = issuer
        self.window_steps = window_steps
        self.random_bytes = random_bytes
        self.options = options or TotpOptions()
        if (self.options.algorithm, self.options.digits) != ("SHA1", 6):
            # Google Authenticator ignores other values and would show wrong codes.
            raise ValueError("only SHA1 with 6 digits is supported")

    def generate_secret(self) -> str:
        return base64.b32encode(self.random_bytes(SECRET_BYTES)).decode()

    def provisioning_uri(self, secret: str, username: str) -> str:
        """The otpauth:// URI the QR code carries; the app shows it as 'Issuer: username'."""
        issuer = quote(self.issuer, safe="")
        return (
            f"otpauth://totp/{issuer}:{quote(username, safe='')}"
            f"?secret={secret}&issuer={issuer}&algorithm={self.options.algorithm}"
            f"&digits={self.options.digits}&period={self.options.period}"
        )

    def step_at(self, now: float) -> int:
        return int(now // self.options.period)

    def validate(self, secret: str, code: str, now: float) -> int | None:
        """The time step the code belongs to, if it is within the window around now; else None."""
        if not CODE_PATTERN.fullmatch(code):
            return None
        hotp = pyotp.HOTP(secret, digits=self.options.digits, digest=hashlib.sha1)
        current = self.step_at(now)
        matched: int | None = None
        # Every step in the window is compared, in constant time, so timing says nothing.
        for step in range(current - self.window_steps, current + self.window_steps + 1):
            if hmac.compare_digest(hotp.at(step), code) and matched is None:
                matched = step
        return matched
