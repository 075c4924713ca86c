"""Sign-in throttling: failures counted per account and per IP, before each guess is checked."""

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
    lock_seconds: int = 0

    @property
    def locked_now(self) -> bool:
        """This attempt is the one that locked the account (or the IP)."""
        return self.reason in ("locked_now", "locked_until_unlock", "ip_blocked") and self.lock_seconds != 0


class Throttle:
    def __init__(self, store: ThrottleStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def begin(self, kind: AttemptKind, account: str, ip: str) -> Verdict:
        """Counts the attempt; refused attempts must not be checked at all."""
        s = self.settings
        limit = s.lockout_password_failures if kind is AttemptKind.PASSWORD else s.lockout_otp_failures
        allowed, reason, wait = await self.store.begin(
            account,
            kind.value,
            ip,
            [
                limit,
                s.lockout_window_seconds,
                s.lockout_base_seconds,
                s.lockout_max_seconds,
                s.lockout_max_consecutive_failures,
                s.lockout_ip_failures,
            ],
        )
        verdict = Verdict(allowed, reason, wait)
        if verdict.locked_now:
            log.warning("sign-in locked: %s after %s failures (%s s)", reason, kind.value, wait)
        return verdict

    async def succeeded(self, kind: AttemptKind, account: str, ip: str) -> None:
        await self.store.succeeded(account, kind.value, ip)

    async def unlock(self, account: str) -> bool:
        return await self.store.unlock(account)

    async def lock_seconds_left(self, account: str) -> int | None:
        return await self.store.lock_seconds_left(account)
