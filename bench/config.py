"""The bench's knobs, each from an environment variable, so a run can be made smaller or bigger."""

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def knob(name: str, default: Any) -> Any:
    """An environment variable as the type of its default; the default when unset or empty."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return type(default)(raw)


@dataclass(frozen=True)
class BenchConfig:
    # later sign-ins measured (and as many more for the step profile), this many at a time
    customers: int = 40
    concurrency: int = 6
    # SSO re-entry flows (Login with a live SSO session, through to the portal page)
    reentry_flows: int = 300
    # ab: each page for this long (or this many requests), this many at a time, keep-alive
    page_seconds: int = 3
    page_max_requests: int = 200_000
    page_concurrency: int = 8
    # rounds of (landing, portal), each stack in turn
    page_rounds: int = 2
    # session store, on a throwaway redis-server
    memory_sessions: int = 100_000
    check_small: int = 1_000
    check_large: int = 1_000_000
    # p99 of 5,000 swung 0.77-2.02 between runs on 2 cores (docs/performance.md); 20,000 holds it
    checks: int = 20_000
    redis_max_memory: str = "6gb"
    argon2_samples: int = 20
    output: str = str(ROOT / "bench" / "results.json")
    # a git ref (a commit, a branch): its code runs in a second stack, measured side by side
    baseline: str = ""

    @classmethod
    def from_env(cls) -> "BenchConfig":
        values = {f.name: knob(f"BENCH_{f.name.upper()}", f.default) for f in fields(cls)}
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        if (
            min(
                self.customers,
                self.concurrency,
                self.reentry_flows,
                self.page_seconds,
                self.page_rounds,
                self.checks,
            )
            < 1
        ):
            raise ValueError("every BENCH_* count must be at least 1")
        if self.customers < 2 or self.concurrency > self.customers:
            raise ValueError("BENCH_CUSTOMERS must be at least 2 and at least BENCH_CONCURRENCY")
        if not 1 <= self.check_small < self.check_large or not 1 <= self.memory_sessions <= self.check_large:
            raise ValueError(
                "need 1 <= BENCH_CHECK_SMALL < BENCH_CHECK_LARGE and 1 <= BENCH_MEMORY_SESSIONS <= BENCH_CHECK_LARGE"
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
