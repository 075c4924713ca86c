"""`make bench`: a stack of its own, driven through its gateway; figures printed and written to JSON."""

import asyncio
import json
import os
import platform
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from devstack import datastores, free_ports
from services.auth.passwords import Passwords
from services.auth.settings import Settings as AuthSettings
from services.common.http_client import HttpxPeerClient
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


@dataclass(frozen=True)
class RunningStack:
    gateway_url: str
    # each service's first replica (its /metrics), and where the other services call it
    service_urls: dict[str, str]
    peer_urls: dict[str, str]
    admin_key_file: Path
    # the argon2 settings the stack was given, if any
    env: dict[str, str]
    # the process trees to read CPU from: each service, nginx, Postgres, Redis
    roots: dict[str, list[int]]


def process_group(name: str) -> str:
    """Replicas ("auth-2") count as their service; the gateway and the peers proxy as nginx."""
    if name in ("gateway", "peers-proxy"):
        return "nginx"
    service = name.rsplit("-", 1)[0] if name.rsplit("-", 1)[-1].isdigit() else name
    if service not in SERVICES:
        raise RuntimeError(f"the stack runs a process the bench does not know: {name}")
    return service


@contextmanager
def bench_stack(
    root: Path, state_dir: Path, *, python_path: Sequence[Path] = (), env: Mapping[str, str] | None = None
) -> Iterator[RunningStack]:
    """A stack of the code in `root` (free ports, own database and key prefix), on a Postgres and a
    Redis of its own too, so /proc tells their CPU apart from anyone else's. Started by that
    tree's own devstack (bench/stack_launcher.py), so its command lines are the tree's.

    `python_path` (after `root`) and `env` reach every process of the stack, as the devstack
    passes its environment on: how bench-routes puts its timing hook into the services."""
    state_dir.mkdir(parents=True)
    postgres = datastores.start_throwaway_postgres(state_dir)
    redis = None
    launcher = None
    try:
        redis = datastores.start_throwaway_redis(state_dir)
        gateway_port, *service_ports = free_ports(5)
        suffix = secrets.token_hex(4)
        options = {
            "root": str(root),
            "state_dir": str(state_dir / "stack"),
            "gateway_port": gateway_port,
            "ports": dict(zip(SERVICES, service_ports, strict=True)),
            "database": f"sso_bench_{suffix}",
            "redis_prefix": f"ssobench-{suffix}:",
            "postgres_server_url": postgres["url"],
            "redis_server_url": redis["url"],
        }
        launcher = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("stack_launcher.py")), json.dumps(options)],
            cwd=root,
            env={
                **os.environ,
                **(env or {}),
                "PYTHONPATH": os.pathsep.join(str(path) for path in (root, *python_path)),
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert launcher.stdout is not None
        line = launcher.stdout.readline()
        if not line.startswith("STACK "):
            raise RuntimeError(f"the stack of {root} did not start (see the lines above)")
        running = json.loads(line.removeprefix("STACK "))
        roots: dict[str, list[int]] = {name: [] for name in (*SERVICES, "nginx")}
        for name, pid in running["pids"].items():
            roots[process_group(name)].append(pid)
        roots["postgres"] = [int((Path(postgres["data_dir"]) / "postmaster.pid").read_text().split()[0])]
        roots["redis"] = [int(Path(redis["pid_file"]).read_text().strip())]
        yield RunningStack(
            gateway_url=running["gateway_url"],
            service_urls=running["service_urls"],
            peer_urls=running["peer_urls"],
            admin_key_file=Path(running["admin_key_file"]),
            env=running["env"],
            roots=roots,
        )
    finally:
        if launcher is not None:
            # Closing its stdin tells the launcher to stop its stack (and drop its database).
            assert launcher.stdin is not None
            launcher.stdin.close()
            launcher.wait(timeout=120)
        if redis is not None:
            datastores.stop_throwaway_redis(redis)
        datastores.stop_throwaway_postgres(postgres)


def answered_by(stack: RunningStack) -> dict[str, float]:
    """Requests each service has answered so far, by "service METHOD route", from its /metrics."""
    counts: dict[str, float] = {}
    for name in SERVICES:
        text = httpx.get(f"{stack.service_urls[name]}/metrics", timeout=10).text
        for match in METRIC_LINE.finditer(text):
            labels = dict(LABEL.findall(match.group("labels")))
            key = f"{name} {labels.get('method', '?')} {labels.get('route', '?')}"
            counts[key] = counts.get(key, 0.0) + float(match.group("value"))
    return counts


def argon2_cost(env: Mapping[str, str]) -> tuple[int, int, int]:
    """A stack's argon2id memory (KiB), iterations and parallelism: its env, else auth's defaults."""
    fields = AuthSettings.model_fields
    return (
        int(env.get("AUTH_ARGON2_MEMORY_KIB", fields["argon2_memory_kib"].default)),
        int(env.get("AUTH_ARGON2_ITERATIONS", fields["argon2_iterations"].default)),
        int(env.get("AUTH_ARGON2_PARALLELISM", fields["argon2_parallelism"].default)),
    )


def argon2_verify_cpu_ms(env: Mapping[str, str], samples: int) -> dict[str, float]:
    """One argon2id verify at a stack's own parameters (its env), as auth runs it (CPU and wall, median)."""
    memory_kib, iterations, parallelism = argon2_cost(env)
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


async def add_users(stack: "RunningStack", count: int) -> list[Account]:
    """Through auth's admin API with the stack's admin key, as ssoctl adds them."""
    issuer = TokenIssuer(SigningKey.from_file(stack.admin_key_file), ADMIN_CALLER)
    accounts = []
    async with HttpxPeerClient(httpx.AsyncClient(trust_env=False)) as http:
        api = AdminApi(
            http,
            issuer,
            auth_url=stack.peer_urls["auth"],
            mfa_url=stack.peer_urls["mfa"],
            session_url=stack.peer_urls["session"],
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


class StackDriver:
    """One stack's share of the run, phase by phase, so two stacks can take turns."""

    def __init__(self, label: str, config: BenchConfig, stack: RunningStack, meter: CpuMeter) -> None:
        self.label = label
        self.config = config
        self.stack = stack
        self.meter = meter
        self.results: dict[str, Any] = {}
        self.later: list[load.Customer] = []
        self.profile_accounts: list[Account] = []
        self.landing: list[PageRun] = []
        self.portal: list[PageRun] = []

    def log(self, message: str) -> None:
        log(f"{self.label}: {message}")

    async def first_sign_ins(self) -> None:
        config = self.config
        self.log(f"adding {2 * config.customers} users; their first sign-ins (with the set-up)")
        accounts = await add_users(self.stack, 2 * config.customers)
        first = customers_for(self.stack.gateway_url, accounts)
        self.results["first"] = run_summary(
            await load.flows(self.meter, first, FIRST_SIGN_IN, config.concurrency)
        )
        await close_all(first)
        self.later = customers_for(self.stack.gateway_url, accounts[: config.customers])
        self.profile_accounts = accounts[config.customers :]

    async def later_sign_ins(self) -> None:
        self.log(f"{self.config.customers} later sign-ins, {self.config.concurrency} at a time")
        run = await load.flows(self.meter, self.later, LATER_SIGN_IN, self.config.concurrency)
        self.results["later"] = run_summary(run)

    async def step_profile(self) -> None:
        self.log("the same again with other customers, step by step, for the profile")
        profiled = customers_for(self.stack.gateway_url, self.profile_accounts)
        steps = await load.step_by_step(self.meter, profiled, LATER_SIGN_IN, self.config.concurrency)
        await close_all(profiled)
        self.results["profile"] = {name: run_summary(run) for name, run in steps.items()}

    async def reentries(self) -> None:
        config = self.config
        self.log(f"{config.reentry_flows} SSO re-entries, {config.concurrency} at a time")
        run = await load.repeated(
            self.meter, self.later, come_back_with_sso, config.reentry_flows, config.concurrency
        )
        self.results["sso_reentry"] = run_summary(run)

    async def page_round(self) -> None:
        config = self.config
        self.log(
            f"landing and portal page with ab, {config.page_seconds} s each, {config.page_concurrency} at a time"
        )
        cookie = self.later[0].browser.cookie_header("/portal/")

        def pages(path: str, cookie: str | None = None) -> PageRun:
            return page_rate(
                self.meter,
                self.stack.gateway_url,
                path,
                seconds=config.page_seconds,
                max_requests=config.page_max_requests,
                concurrency=config.page_concurrency,
                cookie=cookie,
            )

        self.landing.append(await asyncio.to_thread(pages, "/"))
        self.portal.append(await asyncio.to_thread(pages, "/portal/", cookie))

    async def finish(self) -> dict[str, Any]:
        """The figures."""
        await close_all(self.later)
        argon2 = argon2_verify_cpu_ms(self.stack.env, self.config.argon2_samples)
        landing, portal = report.pages_summary(self.landing), report.pages_summary(self.portal)
        return {
            "sign_in": {
                "argon2_verify": argon2,
                "later": self.results["later"],
                "first": self.results["first"],
                "efficiency": argon2["cpu_ms"] / self.results["later"]["server_cpu_ms"],
            },
            "sso_reentry": self.results["sso_reentry"],
            "pages": {
                "landing": landing,
                "portal": portal,
                "ratio": portal["per_second"] / landing["per_second"],
                # the same ratio from the server CPU each page costs: steadier on a busy machine
                "cpu_ratio": landing["server_cpu_ms"] / portal["server_cpu_ms"],
            },
            "profile": self.results["profile"],
        }


async def drive(config: BenchConfig, drivers: list[StackDriver]) -> list[dict[str, Any]]:
    """Every phase on every stack in turn: a load spike from elsewhere falls on both alike."""
    phases = [
        StackDriver.first_sign_ins,
        StackDriver.later_sign_ins,
        StackDriver.step_profile,
        StackDriver.reentries,
        *[StackDriver.page_round] * config.page_rounds,
    ]
    for phase in phases:
        for driver in drivers:
            await phase(driver)
    return [await driver.finish() for driver in drivers]


def baseline_tree(ref: str, into: Path) -> dict[str, str]:
    """The code at `ref`, unpacked from git (no work tree, no .git): the stack before a change."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    compile_catalogues(into)
    return {"ref": ref, "commit": commit}


def compile_catalogues(tree: Path) -> None:
    """What `make catalogues` does for the checked-out tree: each .po compiled beside it."""
    for source in tree.glob("services/**/LC_MESSAGES/*.po"):
        with source.open("rb") as po:
            catalogue = read_po(po)
        with source.with_suffix(".mo").open("wb") as mo:
            write_mo(mo, catalogue)


def this_tree() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": bool(git("status", "--porcelain"))}


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
    results["tree"] = this_tree()
    with tempfile.TemporaryDirectory(prefix="sso-bench-") as scratch_dir, ExitStack() as stacks:
        scratch = Path(scratch_dir)
        roots = {"this tree": ROOT}
        if config.baseline:
            results["baseline"] = baseline_tree(config.baseline, scratch / "baseline-tree")
            roots = {f"baseline {config.baseline}": scratch / "baseline-tree", **roots}
        drivers = []
        for n, (label, root) in enumerate(roots.items()):
            log(f"{label}: starting a stack of its own")
            stack = stacks.enter_context(bench_stack(root, scratch / f"stack-{n}"))
            meter = CpuMeter(stack.roots, answered=partial(answered_by, stack))
            drivers.append(StackDriver(label, config, stack, meter))
        *before, now = asyncio.run(drive(config, drivers))
        stacks.close()
        if before:
            results["baseline"].update(before[0])
        results.update(now)
        log(
            f"session store: {config.memory_sessions} sessions for bytes, "
            f"{config.check_small} and {config.check_large} for the check latency"
        )
        results["session_store"] = asyncio.run(
            session_store.measure(
                scratch,
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
