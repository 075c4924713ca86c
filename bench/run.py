"""`make bench`: a stack of its own, driven through its gateway; figures printed and written to JSON."""

import asyncio
import json
import os
import platform
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from devstack import Stack, datastores, free_ports
from services.auth.passwords import Passwords
from services.auth.settings import Settings as AuthSettings
from services.common.keys import SigningKey
from services.common.service_client import ADMIN_CALLER
from services.common.tokens import TokenIssuer
from services.contracts.admin import AddUser, AdminApi

from . import load, report, session_store
from .browser import FIRST_SIGN_IN, LATER_SIGN_IN, Account, Browser, come_back_with_sso
from .config import ROOT, BenchConfig
from .cpu import CpuMeter
from .pages import PageRun, page_rate

SERVICES = ("auth", "mfa", "session", "portal")
# What the targets count as the server: every process a sign-in passes through.
SERVER = (*SERVICES, "nginx", "postgres", "redis")
METRIC_LINE = re.compile(
    r"^sso_http_request_duration_seconds_count\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$", re.MULTILINE
)
LABEL = re.compile(r'(\w+)="([^"]*)"')


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextmanager
def bench_stack(state_dir: Path) -> Iterator[tuple[Stack, dict[str, list[int]]]]:
    """A stack of its own (free ports, own database and key prefix), on a Postgres and a Redis of
    its own too, so /proc tells their CPU apart from anyone else's."""
    postgres = datastores.start_throwaway_postgres(state_dir)
    redis = None
    stack = None
    try:
        redis = datastores.start_throwaway_redis(state_dir)
        gateway_port, *service_ports = free_ports(5)
        suffix = secrets.token_hex(4)
        stack = Stack(
            root=ROOT,
            state_dir=state_dir / "stack",
            gateway_port=gateway_port,
            ports=dict(zip(SERVICES, service_ports, strict=True)),
            database=f"sso_bench_{suffix}",
            redis_prefix=f"ssobench-{suffix}:",
            postgres_server_url=postgres["url"],
            redis_server_url=redis["url"],
        )
        stack.start()
        pids = {name: [pid] for name, pid, _alive in stack.running_processes()}
        roots = {name: pids[name] for name in SERVICES}
        roots["nginx"] = pids["gateway"]
        roots["postgres"] = [int((Path(postgres["data_dir"]) / "postmaster.pid").read_text().split()[0])]
        roots["redis"] = [int(Path(redis["pid_file"]).read_text().strip())]
        yield stack, roots
    finally:
        if stack is not None:
            stack.stop(drop_database=True)
        if redis is not None:
            datastores.stop_throwaway_redis(redis)
        datastores.stop_throwaway_postgres(postgres)


def answered_by(stack: Stack) -> dict[str, float]:
    """Requests each service has answered so far, by "service METHOD route", from its /metrics."""
    counts: dict[str, float] = {}
    for name in SERVICES:
        text = httpx.get(f"{stack.service_url(name)}/metrics", timeout=10).text
        for match in METRIC_LINE.finditer(text):
            labels = dict(LABEL.findall(match.group("labels")))
            key = f"{name} {labels.get('method', '?')} {labels.get('route', '?')}"
            counts[key] = counts.get(key, 0.0) + float(match.group("value"))
    return counts


def argon2_cost(stack: Stack) -> tuple[int, int, int]:
    """The stack's argon2id memory (KiB), iterations and parallelism: its env, else auth's defaults."""
    fields = AuthSettings.model_fields
    return (
        int(stack.env.get("AUTH_ARGON2_MEMORY_KIB", fields["argon2_memory_kib"].default)),
        int(stack.env.get("AUTH_ARGON2_ITERATIONS", fields["argon2_iterations"].default)),
        int(stack.env.get("AUTH_ARGON2_PARALLELISM", fields["argon2_parallelism"].default)),
    )


def argon2_verify_cpu_ms(stack: Stack, samples: int) -> dict[str, float]:
    """One argon2id verify at the stack's own parameters, as auth runs it (CPU and wall, median)."""
    memory_kib, iterations, parallelism = argon2_cost(stack)
    passwords = Passwords(memory_kib, iterations, parallelism, 1)
    password = secrets.token_urlsafe(16)
    stored = passwords.hasher.hash(password)
    cpu, wall = [], []
    for _ in range(samples):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        if not passwords._verify(stored, password):
            raise RuntimeError("argon2 verify of the right password failed")
        cpu.append(1000 * (time.process_time() - cpu_start))
        wall.append(1000 * (time.perf_counter() - wall_start))
    return {
        "cpu_ms": load.percentile(cpu, 50),
        "wall_ms": load.percentile(wall, 50),
        "memory_kib": memory_kib,
        "iterations": iterations,
        "parallelism": parallelism,
    }


async def add_users(stack: Stack, count: int) -> list[Account]:
    """Through auth's admin API with the stack's admin key, as ssoctl adds them."""
    issuer = TokenIssuer(SigningKey.from_file(stack.secrets_dir / "admin.pem"), ADMIN_CALLER)
    accounts = []
    async with httpx.AsyncClient(trust_env=False) as http:
        api = AdminApi(
            http,
            issuer,
            auth_url=stack.peer_url("auth"),
            mfa_url=stack.peer_url("mfa"),
            session_url=stack.peer_url("session"),
        )
        for _ in range(count):
            account = Account(f"bench{secrets.token_hex(4)}", secrets.token_urlsafe(18))
            await api.add_user(AddUser(operator="bench", username=account.name, password=account.password))
            accounts.append(account)
    return accounts


def customers_for(gateway_url: str, accounts: list[Account]) -> list[load.Customer]:
    return [load.Customer(Browser(gateway_url), account) for account in accounts]


async def close_all(customers: list[load.Customer]) -> None:
    await asyncio.gather(*(c.browser.aclose() for c in customers))


async def signed_out_everywhere_id_token(customer: load.Customer) -> str:
    """Sign out everywhere, reading the id_token from the redirect: what a portal session stores."""
    page = await customer.browser.get("/portal/")
    response = await customer.browser.http.post(
        "/portal/logout-everywhere", data=page.form("/portal/logout-everywhere"), follow_redirects=False
    )
    hint = parse_qs(urlsplit(response.headers.get("location", "")).query).get("id_token_hint")
    if response.status_code != 303 or not hint:
        raise RuntimeError(f"sign out everywhere answered {response.status_code} without an id_token_hint")
    await customer.browser.http.get(response.headers["location"])
    return str(hint[0])


def run_summary(run: load.Run) -> dict[str, Any]:
    by_process = run.cpu_ms_per_flow()
    return {
        "flows": run.flows,
        "wall_seconds": run.wall_seconds,
        "per_second": run.per_second,
        "p50_ms": 1000 * run.percentile(50),
        "p99_ms": 1000 * run.percentile(99),
        "server_cpu_ms": sum(by_process.get(name, 0.0) for name in SERVER),
        "cpu_ms_by_process": by_process,
        "browser_requests_per_flow": run.requests / run.flows,
        "answered_per_flow": report.per_service(run.answered, run.flows),
        "answered_by_route_per_flow": {k: v / run.flows for k, v in sorted(run.answered.items()) if v},
    }


async def drive(config: BenchConfig, stack: Stack, meter: CpuMeter) -> dict[str, Any]:
    results: dict[str, Any] = {}
    log(f"adding {2 * config.customers} users")
    accounts = await add_users(stack, 2 * config.customers)
    throughput_accounts, profile_accounts = accounts[: config.customers], accounts[config.customers :]

    log("first sign-ins (set-up of the authenticator)")
    first = customers_for(stack.gateway_url, accounts)
    first_run = await load.flows(meter, first, FIRST_SIGN_IN, config.concurrency)
    await close_all(first)

    log(f"{config.customers} later sign-ins, {config.concurrency} at a time")
    later = customers_for(stack.gateway_url, throughput_accounts)
    later_run = await load.flows(meter, later, LATER_SIGN_IN, config.concurrency)

    log("the same again, step by step, for the profile")
    profiled = customers_for(stack.gateway_url, profile_accounts)
    steps = await load.step_by_step(meter, profiled, LATER_SIGN_IN, config.concurrency)
    await close_all(profiled)

    log(f"{config.reentry_flows} SSO re-entries")
    reentry_run = await load.repeated(
        meter, later, come_back_with_sso, config.reentry_flows, config.concurrency
    )

    cookie = later[0].browser.cookie_header("/portal/")
    log(f"pages with ab: {config.page_seconds} s each, {config.page_concurrency} at a time")

    def pages(path: str, cookie: str | None = None) -> PageRun:
        return page_rate(
            meter,
            stack.gateway_url,
            path,
            seconds=config.page_seconds,
            max_requests=config.page_max_requests,
            concurrency=config.page_concurrency,
            cookie=cookie,
        )

    landing = await asyncio.to_thread(pages, "/")
    portal = await asyncio.to_thread(pages, "/portal/", cookie)

    id_token = await signed_out_everywhere_id_token(later[0])
    await close_all(later)

    argon2 = argon2_verify_cpu_ms(stack, config.argon2_samples)
    later_summary = run_summary(later_run)
    results["sign_in"] = {
        "argon2_verify": argon2,
        "later": later_summary,
        "first": run_summary(first_run),
        "efficiency": argon2["cpu_ms"] / later_summary["server_cpu_ms"],
    }
    results["sso_reentry"] = run_summary(reentry_run)
    results["pages"] = {
        "landing": report.page_summary(landing),
        "portal": report.page_summary(portal),
        "ratio": portal.per_second / landing.per_second,
    }
    results["profile"] = {name: run_summary(run) for name, run in steps.items()}
    results["_id_token"] = id_token
    return results


def machine() -> dict[str, Any]:
    cpu_model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    memory_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    return {
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


def main() -> int:
    config = BenchConfig.from_env()
    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": "make bench",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": config.as_dict(),
    }
    with tempfile.TemporaryDirectory(prefix="sso-bench-") as scratch:
        log("starting a stack of its own")
        with bench_stack(Path(scratch)) as (stack, roots):
            meter = CpuMeter(roots, answered=lambda: answered_by(stack))
            results.update(asyncio.run(drive(config, stack, meter)))
        id_token = results.pop("_id_token")
        log(
            f"session store: {config.memory_sessions} sessions for bytes, "
            f"{config.check_small} and {config.check_large} for the check latency"
        )
        results["session_store"] = asyncio.run(
            session_store.measure(
                Path(scratch),
                id_token,
                memory_sessions=config.memory_sessions,
                small=config.check_small,
                large=config.check_large,
                checks=config.checks,
                max_memory=config.redis_max_memory,
            )
        )
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["seconds"] = time.perf_counter() - started
    results["targets"] = report.targets(results)
    output = Path(config.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(report.table(results))
    log(f"written to {output}")
    return 0
