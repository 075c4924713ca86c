"""Time and randomness are injected so tests can freeze them."""

import secrets
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class FrozenClock:
    """A clock a test can move by hand."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.current = start

    def now(self) -> float:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += seconds


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random token; 32 bytes gives 256 bits."""
    return secrets.token_urlsafe(nbytes)
