"""`make bench-floor`: what a later sign-in's requests cost when no route does any work.

The sign-in's 12 browser requests and 5 internal calls, in the same order, through nginx to four
uvicorn processes (bench/floor_app.py) whose routes only answer, beside one argon2id verify at
auth's parameters, measured in the same run. The CPU per sign-in here is the floor under any
implementation of this design (four services behind one gateway, these hops), before a single
query, signature, template or log line; `argon2 / (argon2 + floor)` is the best efficiency such
an implementation could reach, and `argon2 - floor` is what is left, at efficiency 0.5, for
everything the product itself does in a sign-in. Knobs: FLOOR_SIGN_INS (300),
FLOOR_CONCURRENCY (6, as make bench), FLOOR_OUTPUT (bench/floor.json).
"""

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from devstack import free_ports, processes
from devstack.gateway import nginx_binary
from devstack.stack import http_status

from .config import ROOT, knob
from .cpu import CpuMeter
from .run import argon2_verify_cpu_ms, log, machine, this_tree

SERVICES = ("auth", "mfa", "session", "portal")
WARM_UP = 20
START_TIMEOUT = 30.0

# A later sign-in as the browser asks it (bench/browser.py's LATER_SIGN_IN), with the status each
# answer must have: a 200 page, a 302/303 redirect. The internal calls are the routes' own.
SIGN_IN: tuple[tuple[str, str, int], ...] = (
    ("GET", "/", 200),
    ("GET", "/portal/login", 302),
    ("GET", "/auth/authorize?client_id=portal", 200),
    ("POST", "/auth/login/username", 303),
    ("GET", "/auth/login", 200),
    ("POST", "/auth/login/password", 303),
    ("GET", "/mfa/", 200),
    ("POST", "/mfa/verify", 303),  # mfa -> auth attempts/begin
    ("GET", "/auth/login/complete", 200),  # auth -> session sso-sessions
    ("GET", "/auth/authorize?client_id=portal&sso=1", 303),  # auth -> session lookup
    ("GET", "/portal/callback?code=c&state=s", 303),  # portal -> auth token, session portal-sessions
    ("GET", "/portal/", 200),
)
INTERNAL_CALLS = 5
FORM = b"csrf_token=" + b"c" * 43 + b"&step=" + b"s" * 300 + b"&username=customer-0001"

NGINX_CONFIG = """\
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_timeout 30s;
{upstreams}
    server {{
        listen 127.0.0.1:{gateway_port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $remote_addr;
        location /auth/ {{ proxy_pass http://auth; }}
        location /mfa/ {{ proxy_pass http://mfa; }}
        location / {{ proxy_pass http://portal; }}
    }}
}}
"""


@dataclass(frozen=True)
class FloorStack:
    gateway_url: str
    pids: dict[str, list[int]]


# The marker each process's command line holds, for devstack.processes' checks by pid.
MARKERS = {"service": "bench.floor_app:create_app", "nginx": "nginx"}


def _wait_for(url: str, pid: int, marker: str, name: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while http_status(url) != 200:
        if not processes.is_running(pid, marker):
            raise RuntimeError(f"{name} exited:\n{processes.log_tail(log_path)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not answer {url} within {START_TIMEOUT:.0f} s")
        time.sleep(0.1)


@contextmanager
def floor_stack(state_dir: Path) -> Iterator[FloorStack]:
    """nginx and the four floor services on free loopback ports; all stopped on the way out."""
    gateway_port, *service_ports = free_ports(1 + len(SERVICES))
    ports = dict(zip(SERVICES, service_ports, strict=True))
    peers = json.dumps({name: f"http://127.0.0.1:{port}" for name, port in ports.items()})
    with ExitStack() as stop:
        pids: dict[str, list[int]] = {}
        for name, port in ports.items():
            command = [sys.executable, "-m", "uvicorn", MARKERS["service"], "--factory",
                       "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                       "--loop", "uvloop", "--http", "httptools"]  # fmt: skip
            env = {**os.environ, "FLOOR_SERVICE": name, "FLOOR_PEERS": peers}
            pid = processes.spawn(command, env=env, log_path=state_dir / f"{name}.log", cwd=ROOT)
            stop.callback(processes.terminate, pid, MARKERS["service"])
            pids[name] = [pid]
        for name, port in ports.items():
            url = f"http://127.0.0.1:{port}/healthz"
            _wait_for(url, pids[name][0], MARKERS["service"], name, state_dir / f"{name}.log")
        upstreams = "".join(
            f"    upstream {name} {{ server 127.0.0.1:{ports[name]}; keepalive 16; }}\n"
            for name in ("auth", "mfa", "portal")
        )
        config = state_dir / "nginx.conf"
        config.write_text(NGINX_CONFIG.format(dir=state_dir, upstreams=upstreams, gateway_port=gateway_port))
        command = [nginx_binary(), "-p", str(state_dir), "-c", str(config), "-g", "daemon off;"]
        nginx_log = state_dir / "nginx.out"
        nginx = processes.spawn(command, env=os.environ, log_path=nginx_log, cwd=state_dir)
        stop.callback(processes.terminate, nginx, MARKERS["nginx"])
        pids["nginx"] = [nginx]
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        _wait_for(f"{gateway_url}/", nginx, MARKERS["nginx"], "nginx", nginx_log)
        yield FloorStack(gateway_url, pids)


async def sign_in(client: aiohttp.ClientSession, gateway_url: str) -> None:
    for method, path, status in SIGN_IN:
        body = FORM if method == "POST" else None
        headers = {"content-type": "application/x-www-form-urlencoded"} if body else None
        async with client.request(
            method, gateway_url + path, data=body, headers=headers, allow_redirects=False
        ) as answer:
            await answer.read()
            if answer.status != status:
                raise RuntimeError(f"{method} {path} answered {answer.status}, not {status}")


async def sign_ins(gateway_url: str, count: int, concurrency: int) -> float:
    """`count` sign-ins, `concurrency` customers at a time, each on a connection of its own."""
    pending = list(range(count))

    async def customer() -> None:
        async with aiohttp.ClientSession() as client:
            while pending:
                pending.pop()
                await sign_in(client, gateway_url)

    started = time.perf_counter()
    await asyncio.gather(*(customer() for _ in range(min(concurrency, count))))
    return time.perf_counter() - started


async def measure(stack: FloorStack, count: int, concurrency: int) -> dict[str, Any]:
    await sign_ins(stack.gateway_url, WARM_UP, concurrency)
    meter = CpuMeter(stack.pids)
    before = meter.read()
    seconds = await sign_ins(stack.gateway_url, count, concurrency)
    spent = meter.since(before).seconds
    by_process = {name: 1000 * spent[name] / count for name in (*SERVICES, "nginx")}
    return {
        "sign_ins": count,
        "concurrency": concurrency,
        "sign_ins_per_second": count / seconds,
        "cpu_ms_per_sign_in_by_process": by_process,
        "cpu_ms_per_sign_in": sum(by_process.values()),
        "load_generator_cpu_ms_per_sign_in": 1000 * spent[CpuMeter.LOAD_GENERATOR] / count,
    }


def table(results: dict[str, Any]) -> str:
    floor, argon2 = results["floor"], results["argon2"]["cpu_ms"]
    by_process = ", ".join(f"{name} {ms:.2f}" for name, ms in floor["cpu_ms_per_sign_in_by_process"].items())
    requests = len(SIGN_IN) + INTERNAL_CALLS
    return "\n".join(
        [
            f"The floor: a later sign-in's {len(SIGN_IN)} browser requests and {INTERNAL_CALLS} internal"
            f" calls, no work in any route ({floor['sign_ins']} sign-ins, {floor['concurrency']} at a time)",
            f"  server CPU per sign-in             {floor['cpu_ms_per_sign_in']:7.2f} ms ({by_process})",
            f"  per request into Python            {results['ms_per_request']:7.3f} ms (nginx's share included, {requests} requests)",
            f"  argon2id verify, same run          {argon2:7.2f} ms",
            f"  best efficiency on this floor      {results['best_efficiency']:7.3f}  argon2 / (argon2 + floor)",
            f"  left for the product at 0.5        {results['left_at_half']:7.2f} ms  argon2 - floor",
        ]
    )


def main() -> int:
    count = knob("FLOOR_SIGN_INS", 300)
    concurrency = knob("FLOOR_CONCURRENCY", 6)
    if count < 1 or concurrency < 1:
        raise ValueError("FLOOR_SIGN_INS and FLOOR_CONCURRENCY must be at least 1")
    output = Path(knob("FLOOR_OUTPUT", str(ROOT / "bench" / "floor.json")))
    results: dict[str, Any] = {
        "command": "make bench-floor",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "tree": this_tree(),
    }
    with tempfile.TemporaryDirectory(prefix="sso-bench-floor-") as scratch:
        log("starting nginx and four services whose routes only answer")
        with floor_stack(Path(scratch)) as stack:
            log(f"{WARM_UP} sign-ins to warm up, then {count} measured, {concurrency} at a time")
            results["floor"] = asyncio.run(measure(stack, count, concurrency))
    results["argon2"] = argon2_verify_cpu_ms({}, 15)
    floor_ms, argon2_ms = results["floor"]["cpu_ms_per_sign_in"], results["argon2"]["cpu_ms"]
    results["ms_per_request"] = floor_ms / (len(SIGN_IN) + INTERNAL_CALLS)
    results["best_efficiency"] = argon2_ms / (argon2_ms + floor_ms)
    results["left_at_half"] = argon2_ms - floor_ms
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    log(f"written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
