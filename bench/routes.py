"""`make bench-routes`: main-thread CPU per request, by service and route, over later sign-ins.

One customer at a time, so each service process has one request in flight and nothing
interleaves: the CPU its main thread spends between a request's start and end is that route's
own. The services are timed by bench/routes_hook/sitecustomize.py, put on their PYTHONPATH for
this stack only; argon2 runs in auth's worker threads and is not in these figures (auth's
process CPU, printed below the table, holds it).
"""

import asyncio
import json
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import load
from .browser import FIRST_SIGN_IN, LATER_SIGN_IN
from .config import ROOT, knob
from .cpu import CpuMeter
from .run import (
    SERVICES,
    RunningStack,
    add_users,
    bench_stack,
    close_all,
    customers_for,
    log,
    machine,
    this_tree,
)

HOOK_DIR = Path(__file__).with_name("routes_hook")
# Later sign-ins before the measured ones: each process's first requests pay for imports,
# template compiles and new connections that a running service has long paid for.
WARM_UP = 10
# The first sign-ins (the set-up) only make the accounts ready: as many at a time as make bench.
FIRST_CONCURRENCY = 6
# Asked by probes and the bench, not by a sign-in.
NOT_A_SIGN_IN = ("/healthz", "/readyz", "/metrics")

Counts = dict[tuple[str, str], tuple[int, float]]


@dataclass(frozen=True)
class Route:
    service: str
    route: str
    requests_per_sign_in: float
    ms_per_request: float
    ms_per_sign_in: float


def read_counts(counts_dir: Path, service_of: dict[int, str]) -> Counts:
    """Requests and main-thread CPU seconds so far, by (service, "METHOD path"), replicas summed."""
    counts: Counts = {}
    for path in counts_dir.glob("*.json"):
        service = service_of.get(int(path.stem))
        if service is None:  # not a service: the launcher imports the hook too
            continue
        for route, (requests, seconds) in json.loads(path.read_text()).items():
            before = counts.get((service, route), (0, 0.0))
            counts[(service, route)] = (before[0] + int(requests), before[1] + float(seconds))
    return counts


async def settled_counts(counts_dir: Path, service_of: dict[int, str]) -> Counts:
    """The counts once the last request's own write is done (it follows its answer), at most 5 s."""
    counts = read_counts(counts_dir, service_of)
    for _ in range(25):
        await asyncio.sleep(0.2)
        again = read_counts(counts_dir, service_of)
        if again == counts:
            break
        counts = again
    return counts


def per_route(before: Counts, after: Counts, sign_ins: int) -> list[Route]:
    routes = []
    for (service, route), (requests, seconds) in after.items():
        requests_before, seconds_before = before.get((service, route), (0, 0.0))
        requests -= requests_before
        seconds -= seconds_before
        if requests == 0 or route.split(" ", 1)[1] in NOT_A_SIGN_IN:
            continue
        routes.append(
            Route(service, route, requests / sign_ins, 1000 * seconds / requests, 1000 * seconds / sign_ins)
        )
    return sorted(routes, key=lambda r: (r.service, -r.ms_per_sign_in, r.route))


async def measure(stack: RunningStack, counts_dir: Path, sign_ins: int) -> dict[str, Any]:
    meter = CpuMeter(stack.roots)
    service_of = {pid: service for service in SERVICES for pid in stack.roots[service]}
    log(f"adding {sign_ins + WARM_UP} users; their first sign-ins (with the set-up)")
    accounts = await add_users(stack, sign_ins + WARM_UP)
    first = customers_for(stack.gateway_url, accounts)
    await load.flows(meter, first, FIRST_SIGN_IN, FIRST_CONCURRENCY)
    await close_all(first)
    log(f"{WARM_UP} later sign-ins to warm up, then {sign_ins} measured, one at a time")
    warm = customers_for(stack.gateway_url, accounts[sign_ins:])
    await load.flows(meter, warm, LATER_SIGN_IN, 1)
    await close_all(warm)
    before = await settled_counts(counts_dir, service_of)
    later = customers_for(stack.gateway_url, accounts[:sign_ins])
    run = await load.flows(meter, later, LATER_SIGN_IN, 1)
    await close_all(later)
    after = await settled_counts(counts_dir, service_of)
    routes = per_route(before, after, sign_ins)
    return {
        "routes": [route.__dict__ for route in routes],
        "main_threads_ms_per_sign_in": sum(route.ms_per_sign_in for route in routes),
        # every thread of each process (auth's argon2 workers too), from /proc in 10 ms ticks
        "process_cpu_ms_per_sign_in": run.cpu_ms_per_flow(),
    }


def table(results: dict[str, Any]) -> str:
    sign_ins = results["config"]["sign_ins"]
    lines = [
        f"Main-thread CPU per request, {sign_ins} later sign-ins one at a time (after {WARM_UP} to warm up)",
        f"{'service':8}  {'route':42}  {'per sign-in':>11}  {'ms/request':>10}  {'ms/sign-in':>10}",
    ]
    for route in results["routes"]:
        lines.append(
            f"{route['service']:8}  {route['route']:42}  {route['requests_per_sign_in']:11.2f}  "
            f"{route['ms_per_request']:10.2f}  {route['ms_per_sign_in']:10.2f}"
        )
    total = "the four services' main threads"
    lines.append(f"{'':8}  {total:42}  {'':11}  {'':10}  {results['main_threads_ms_per_sign_in']:10.2f}")
    process = results["process_cpu_ms_per_sign_in"]
    lines.append(
        "process CPU ms per sign-in, all threads (/proc, 10 ms ticks): "
        + ", ".join(f"{name} {process[name]:.1f}" for name in SERVICES)
    )
    return "\n".join(lines)


def main() -> int:
    sign_ins = knob("BENCH_ROUTES_SIGN_INS", 60)
    if sign_ins < 1:
        raise ValueError("BENCH_ROUTES_SIGN_INS must be at least 1")
    output = Path(knob("BENCH_ROUTES_OUTPUT", str(ROOT / "bench" / "routes.json")))
    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": "make bench-routes",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "tree": this_tree(),
        "config": {"sign_ins": sign_ins, "warm_up": WARM_UP},
    }
    with tempfile.TemporaryDirectory(prefix="sso-bench-routes-") as scratch_dir:
        scratch = Path(scratch_dir)
        counts_dir = scratch / "counts"
        counts_dir.mkdir()
        log("starting a stack of its own, its services timed per route")
        env = {"BENCH_ROUTES_DIR": str(counts_dir)}
        with bench_stack(ROOT, scratch / "stack", python_path=[HOOK_DIR], env=env) as stack:
            results.update(asyncio.run(measure(stack, counts_dir, sign_ins)))
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["seconds"] = time.perf_counter() - started
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    log(f"written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
