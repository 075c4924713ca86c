"""TOTP (RFC 6238) as the authenticator apps expect it: SHA1, 6 digits, 30 s."""

import base64
import hmac
import re
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

SECRET_BYTES = 20  # 160 bits, the size RFC 4226 recommends; 32 base32 characters
CODE_PATTERN = re.compile(r"[0-9]{6}")


def secret_key(secret: str) -> bytes:
    """The key a base32 secret stands for, as the apps read it: any case, padding optional."""
    return base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)


def hotp(key: bytes, counter: int) -> str:
    """RFC 4226 HOTP: HMAC-SHA1 of the 8-byte counter, dynamically truncated, 6 digits."""
    digest = hmac.digest(key, struct.pack(">Q", counter), "sha1")
    offset = digest[-1] & 0x0F
    value = struct.unpack_from(">I", digest, offset)[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


@dataclass(frozen=True)
class TotpOptions:
    algorithm: str = "SHA1"
    digits: int = 6
    period: int = 30


@dataclass(frozen=True)
class CodeCheck:
    """step: the accepted time step, when the code is from within the window.
    skew_steps: else, how many steps ahead (+) or behind (-) of ours the code's clock is,
    when it matches a step beyond the window but within `skew_steps` of now; it is not accepted.
    """

    step: int | None = None
    skew_steps: int | None = None


class TotpVerifier:
    def __init__(
        self,
        issuer: str,
        window_steps: int = 1,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        options: TotpOptions | None = None,
        skew_steps: int = 10,
    ) -> None:
        self.issuer = issuer
        self.window_steps = window_steps
        self.skew_steps = skew_steps
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
        return self.check(secret, code, now).step

    def check(self, secret: str, code: str, now: float) -> CodeCheck:
        """Where the code lies: a step within the window, a clock offset beyond it, or nowhere.

        Every step out to `skew_steps` either side is computed and compared, in constant time,
        whatever the code, so the time taken says nothing about which (if any) matched.
        """
        if not CODE_PATTERN.fullmatch(code):
            return CodeCheck()
        key = secret_key(secret)  # once per check, not once per step
        current = self.step_at(now)
        reach = max(self.window_steps, self.skew_steps)
        matched: int | None = None
        skew: int | None = None
        # Nearest steps first: were a code to match two steps, the nearer one counts.
        for offset in sorted(range(-reach, reach + 1), key=abs):
            step = current + offset
            hit = step >= 0 and hmac.compare_digest(hotp(key, step), code)
            inside = abs(offset) <= self.window_steps
            if hit and inside and matched is None:
                matched = current + offset
            if hit and not inside and skew is None:
                skew = offset
        if matched is not None:
            return CodeCheck(step=matched)
        return CodeCheck(skew_steps=skew)
