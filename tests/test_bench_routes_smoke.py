"""`make bench-routes` in miniature, so it cannot rot: a few sign-ins, no thresholds.

The figures belong in docs/performance.md; this proves the tool still times each service's
routes on a stack of its own, and that the hook measures nothing in a process without its
directory.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.routes import HOOK_DIR, per_route

ROOT = Path(__file__).resolve().parent.parent
# What every later sign-in asks of the services: one of each, at least.
SIGN_IN_ROUTES = {
    ("auth", "GET /auth/authorize"),
    ("auth", "POST /auth/login/username"),
    ("auth", "POST /auth/login/password"),
    ("auth", "GET /auth/login/complete"),
    ("auth", "POST /auth/token"),
    ("mfa", "GET /mfa/"),
    ("mfa", "POST /mfa/verify"),
    ("portal", "GET /portal/callback"),
    ("session", "POST /internal/sso-sessions"),
}


@pytest.fixture(scope="module")
def routes_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    output = tmp_path_factory.mktemp("bench-routes") / "routes.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.routes"],
        cwd=ROOT,
        env={**os.environ, "BENCH_ROUTES_SIGN_INS": "2", "BENCH_ROUTES_OUTPUT": str(output)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(output.read_text()), result.stdout


def test_the_sign_ins_routes_are_timed_with_positive_cpu(routes_run: tuple[dict[str, Any], str]) -> None:
    results, _ = routes_run
    routes = {(r["service"], r["route"]): r for r in results["routes"]}
    assert SIGN_IN_ROUTES <= set(routes)
    for key in SIGN_IN_ROUTES:
        route = routes[key]
        assert route["requests_per_sign_in"] >= 1, key
        assert route["ms_per_request"] > 0 and route["ms_per_sign_in"] > 0, key
    # Probes are no part of a sign-in.
    assert not [key for key in routes if key[1].endswith(("/healthz", "/readyz", "/metrics"))]
    total = sum(r["ms_per_sign_in"] for r in results["routes"])
    assert results["main_threads_ms_per_sign_in"] == pytest.approx(total) and total > 0
    assert results["config"] == {"sign_ins": 2, "warm_up": 10}


def test_table_is_printed(routes_run: tuple[dict[str, Any], str]) -> None:
    results, printed = routes_run
    for line in ("auth      POST /auth/login/password", "mfa       POST /mfa/verify", "per sign-in"):
        assert line in printed
    assert "eyJ" not in printed + json.dumps(results)


def test_only_the_measured_window_counts() -> None:
    before = {
        ("auth", "POST /auth/token"): (10, 0.5),
        ("auth", "GET /healthz"): (3, 0.01),
        ("portal", "GET /"): (5, 0.1),
    }
    after = {
        ("auth", "POST /auth/token"): (14, 0.54),
        ("auth", "GET /healthz"): (9, 0.02),
        ("mfa", "GET /mfa/"): (2, 0.004),  # first asked during the window
        ("portal", "GET /"): (5, 0.1),  # not asked during the window
    }
    routes = per_route(before, after, sign_ins=2)
    assert [(r.service, r.route) for r in routes] == [("auth", "POST /auth/token"), ("mfa", "GET /mfa/")]
    token = routes[0]
    assert token.requests_per_sign_in == 2 and token.ms_per_request == pytest.approx(10)
    assert token.ms_per_sign_in == pytest.approx(20)


def test_hook_is_inert_without_its_directory() -> None:
    probe = "from services.common.logging import RequestContextMiddleware as M; print(M.__call__.__module__)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HOOK_DIR)])}
    env.pop("BENCH_ROUTES_DIR", None)
    plain = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    timed = subprocess.run(
        [sys.executable, "-c", probe], env={**env, "BENCH_ROUTES_DIR": "/nonexistent"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert plain.stdout.strip() == "services.common.logging"
    assert timed.stdout.strip() == "sitecustomize"
