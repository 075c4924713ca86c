"""Sign-in throttling: failures counted per account (known and unknown browsers apart) and per
address, before each guess is checked."""

import logging
from dataclasses import dataclass
from enum import StrEnum

from .settings import Settings
from .throttle_store import ThrottleStore

log = logging.getLogger(__name__)


class AttemptKind(StrEnum):
    PASSWORD = "password"  # noqa: S105 (a kind of attempt, not a password)
    OTP = "otp"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str
    # A refused attempt's wait: the seconds its lock has left, -1 until an unlock.
    lock_seconds: int = 0
    # Counted on this browser's device cookie, not on the account's unknown browsers.
    known_browser: bool = False

    @property
    def locked_now(self) -> bool:
        """This attempt is the one that locked the account's unknown browsers (or a known one)."""
        return self.reason in ("locked_now", "locked_until_unlock") and self.lock_seconds != 0

    @property
    def address_noisy_now(self) -> bool:
        """This attempt took its address past the per-address limit (which slows nothing by itself)."""
        return self.reason == "ip_noisy"


class Throttle:
    def __init__(self, store: ThrottleStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def begin(self, kind: AttemptKind, account: str, ip: str, device: str | None = None) -> Verdict:
        """Counts the attempt; refused attempts must not be checked at all.

        `device` is the browser's device id for this account (DeviceCookies), None for an
        unknown browser. The address never refuses an attempt: behind one address (a company's
        NAT, a node of the cluster) there may be many customers, and one noisy client must not
        lock them all out.
        """
        s = self.settings
        limit = s.lockout_password_failures if kind is AttemptKind.PASSWORD else s.lockout_otp_failures
        allowed, reason, wait, known = await self.store.begin(
            account,
            kind.value,
            ip,
            device,
            [
                limit,
                s.lockout_window_seconds,
                s.lockout_base_seconds,
                s.lockout_max_seconds,
                s.lockout_max_consecutive_failures,
                s.lockout_ip_failures,
            ],
        )
        verdict = Verdict(allowed, reason, wait, known)
        if verdict.locked_now:
            browser = "a known browser" if known else "unknown browsers"
            log.warning(
                "sign-in locked for %s: %s after %s failures (%s s)", browser, reason, kind.value, wait
            )
        if verdict.address_noisy_now:
            log.warning("an address passed %s sign-in failures in the window", s.lockout_ip_failures)
        return verdict

    async def succeeded(self, kind: AttemptKind, account: str, ip: str, device: str | None = None) -> None:
        await self.store.succeeded(account, kind.value, ip, device)

    async def unlock(self, account: str) -> bool:
        return await self.store.unlock(account)

    async def lock_seconds_left(self, account: str) -> int | None:
        return await self.store.lock_seconds_left(account)
