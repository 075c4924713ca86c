"""Drives many customers at once, bounded in number and concurrency, and reads the CPU it cost."""

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from .browser import Account, Browser, Step, timed
from .cpu import CpuMeter


@dataclass(frozen=True)
class Customer:
    browser: Browser
    account: Account


@dataclass(frozen=True)
class Run:
    """What a bounded run did: how many flows, in how long, each how long, and the CPU per process."""

    flows: int
    wall_seconds: float
    latencies: list[float]
    cpu_seconds: dict[str, float]
    # requests the browsers sent, and what each service answered (internal calls too)
    requests: int
    answered: dict[str, float]

    @property
    def per_second(self) -> float:
        return self.flows / self.wall_seconds

    def percentile(self, p: float) -> float:
        return percentile(self.latencies, p)

    def cpu_ms_per_flow(self) -> dict[str, float]:
        return {name: 1000 * seconds / self.flows for name, seconds in self.cpu_seconds.items()}


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation; the median for p=50."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(p) - 1] if p < 100 else max(values)


async def _bounded(jobs: Sequence[Callable[[], Awaitable[float]]], concurrency: int) -> list[float]:
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[float]]) -> float:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def measured(
    meter: CpuMeter,
    customers: Sequence[Customer],
    jobs: Sequence[Callable[[], Awaitable[float]]],
    concurrency: int,
) -> Run:
    """Runs the jobs (each returns its own duration), at most `concurrency` at a time."""
    requests_before = sum(c.browser.requests for c in customers)
    before = meter.read()
    started = time.perf_counter()
    latencies = await _bounded(jobs, concurrency)
    wall = time.perf_counter() - started
    spent = meter.since(before)
    requests = sum(c.browser.requests for c in customers) - requests_before
    return Run(len(jobs), wall, latencies, spent.seconds, requests, spent.answered)


def whole_flow(customer: Customer, steps: Sequence[tuple[str, Step]]) -> Callable[[], Awaitable[float]]:
    async def job() -> float:
        total = 0.0
        for _name, step in steps:
            total += await timed(step, customer.browser, customer.account)
        return total

    return job


def one_step(customer: Customer, step: Step) -> Callable[[], Awaitable[float]]:
    async def job() -> float:
        return await timed(step, customer.browser, customer.account)

    return job


async def flows(
    meter: CpuMeter, customers: Sequence[Customer], steps: Sequence[tuple[str, Step]], concurrency: int
) -> Run:
    """Every customer through all the steps; up to `concurrency` customers at a time."""
    return await measured(meter, customers, [whole_flow(c, steps) for c in customers], concurrency)


async def step_by_step(
    meter: CpuMeter, customers: Sequence[Customer], steps: Sequence[tuple[str, Step]], concurrency: int
) -> dict[str, Run]:
    """All customers take step 1, then all take step 2...: so each step's CPU can be told apart."""
    return {
        name: await measured(meter, customers, [one_step(c, step) for c in customers], concurrency)
        for name, step in steps
    }


async def repeated(
    meter: CpuMeter, customers: Sequence[Customer], step: Step, count: int, concurrency: int
) -> Run:
    """`count` runs of one step, spread over the customers in turn, `concurrency` at a time."""
    per_customer = [customers[i % len(customers)] for i in range(count)]
    # One customer never runs two flows at once: its jobs queue behind each other.
    locks = {id(c): asyncio.Lock() for c in customers}

    def job(customer: Customer) -> Callable[[], Awaitable[float]]:
        async def run() -> float:
            async with locks[id(customer)]:
                return await timed(step, customer.browser, customer.account)

        return run

    return await measured(meter, customers, [job(c) for c in per_customer], concurrency)
