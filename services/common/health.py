"""Readiness: /readyz answers 200 only while the process takes traffic and its dependencies answer.

/healthz (liveness) says the process is alive; /readyz (readiness) also asks each dependency
(Postgres, Redis) and turns false the moment the process is told to stop. uvicorn handles
SIGTERM itself (it stops accepting, drains, then runs the lifespan shutdown): the hook below
runs first and chains to uvicorn's handler, so readiness is false before draining starts. The
lifespan shutdown clears it too, for servers that stop without a signal.
"""

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import Any

from .metrics import dependency_failed

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[Any]]
CHECK_TIMEOUT_SECONDS = 2.0


class Readiness:
    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}
        self.serving = False
        self.stopping = False

    def add_check(self, dependency: str, check: Check) -> None:
        """check() raises (or takes longer than 2 s) when the dependency does not answer."""
        self.checks[dependency] = check

    def start(self) -> None:
        self.serving = True

    def stop(self, reason: str) -> None:
        if not self.stopping:
            log.info("not ready any more: %s", reason, extra={"fields": {"ready": False, "reason": reason}})
        self.stopping = True

    async def _check(self, dependency: str, check: Check) -> str:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
        except Exception as error:  # any failure means "not ready"; only its type is logged
            dependency_failed(dependency)
            log.warning("readiness: %s does not answer: %s", dependency, type(error).__name__)
            return "timeout" if isinstance(error, TimeoutError) else "failed"
        return "ok"

    async def report(self) -> tuple[bool, dict[str, str]]:
        if self.stopping:
            return False, {"process": "stopping"}
        if not self.serving:
            return False, {"process": "starting"}
        names = list(self.checks)
        results = await asyncio.gather(*(self._check(name, self.checks[name]) for name in names))
        status = dict(zip(names, results, strict=True))
        return all(result == "ok" for result in results), status


@contextlib.contextmanager
def not_ready_on_sigterm(readiness: Readiness) -> Iterator[None]:
    """While inside, SIGTERM first marks the process not ready, then does what it did before."""
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except ValueError:  # not the main thread (a test client): no signals to catch here
        yield
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        readiness.stop("SIGTERM")
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    try:
        signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        # Put back what was there, unless someone (uvicorn, at exit) already changed it again.
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous)


def postgres_check(pool: Any) -> Check:
    """Answers when the pool can run a query (an asyncpg.Pool)."""

    async def check() -> None:
        await pool.fetchval("SELECT 1")

    return check


def redis_check(client: Any) -> Check:
    """Answers when Redis answers PING (a redis.asyncio client)."""

    async def check() -> None:
        await client.ping()

    return check
