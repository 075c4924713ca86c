"""`make bench` in miniature, so it cannot rot: tiny counts, no thresholds, a complete and sane table.

The figures themselves belong in docs/performance.md; this only proves the bench still runs
end to end on a stack of its own and that every figure it reports is really measured.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.browser import LATER_SIGN_IN
from bench.load import percentile
from bench.run import process_group
from bench.session_store import SessionIds, Template

ROOT = Path(__file__).resolve().parent.parent

TINY = {
    "BENCH_CUSTOMERS": "3",
    "BENCH_CONCURRENCY": "2",
    "BENCH_REENTRY_FLOWS": "6",
    "BENCH_PAGE_SECONDS": "1",
    "BENCH_PAGE_MAX_REQUESTS": "300",
    "BENCH_PAGE_CONCURRENCY": "4",
    "BENCH_MEMORY_SESSIONS": "500",
    "BENCH_CHECK_SMALL": "50",
    "BENCH_CHECK_LARGE": "500",
    "BENCH_CHECKS": "50",
    "BENCH_ARGON2_SAMPLES": "3",
    "BENCH_REDIS_MAX_MEMORY": "256mb",
    "BENCH_PAGE_ROUNDS": "1",
    # The committed code as a second stack, side by side: the way levers are measured.
    "BENCH_BASELINE": "HEAD",
}
SERVER = ("auth", "mfa", "session", "portal", "nginx", "postgres", "redis")


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    output = tmp_path_factory.mktemp("bench") / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench"],
        cwd=ROOT,
        env={**os.environ, **TINY, "BENCH_OUTPUT": str(output)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(output.read_text()), result.stdout + result.stderr


def positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_every_figure_of_the_issue_is_measured_and_positive(bench_run: tuple[dict[str, Any], str]) -> None:
    results, _ = bench_run
    later = results["sign_in"]["later"]
    figures = {
        "later sign-ins/s": later["per_second"],
        "server CPU per sign-in": later["server_cpu_ms"],
        "argon2 verify CPU": results["sign_in"]["argon2_verify"]["cpu_ms"],
        "efficiency": results["sign_in"]["efficiency"],
        "re-entry flows/s": results["sso_reentry"]["per_second"],
        "re-entry p50": results["sso_reentry"]["p50_ms"],
        "re-entry p99": results["sso_reentry"]["p99_ms"],
        "portal pages/s": results["pages"]["portal"]["per_second"],
        "portal p99": results["pages"]["portal"]["p99_ms"],
        "landing pages/s": results["pages"]["landing"]["per_second"],
        "page ratio": results["pages"]["ratio"],
        "page ratio by CPU": results["pages"]["cpu_ratio"],
        "bytes per SSO session": results["session_store"]["memory"]["sso_bytes_per_session"],
        "bytes per portal session": results["session_store"]["memory"]["portal_bytes_per_session"],
    }
    for size in ("50", "500"):
        for check in ("portal_check", "sso_check"):
            for p in ("p50_ms", "p99_ms"):
                figures[f"{check} {p} at {size}"] = results["session_store"]["latency"][size][check][p]
    assert {name: value for name, value in figures.items() if not positive(value)} == {}
    assert set(results["targets"]) == {
        "efficiency", "page_ratio", "sso_bytes", "portal_bytes", "check_p50_growth", "check_p99_growth"
    }  # fmt: skip


def test_figures_are_sane(bench_run: tuple[dict[str, Any], str]) -> None:
    results, _ = bench_run
    sign_in = results["sign_in"]
    # The server's CPU per sign-in holds one argon2 verify, and the whole stack cannot be faster
    # than its slowest part: the ratios lie between nothing and one (with a tick's slack).
    assert 0 < sign_in["efficiency"] < 1.5
    assert sign_in["later"]["p99_ms"] >= sign_in["later"]["p50_ms"] > 0
    assert sign_in["later"]["flows"] == 3 and sign_in["first"]["flows"] == 6
    pages = results["pages"]
    assert pages["portal"]["requests"] > 0 and pages["landing"]["requests"] > 0
    for page in ("portal", "landing"):
        assert pages[page]["p99_ms"] >= pages[page]["p50_ms"] > 0
    assert pages["ratio"] == pytest.approx(pages["portal"]["per_second"] / pages["landing"]["per_second"])
    memory = results["session_store"]["memory"]
    # An SSO session is at least its hash (its ids, user id and name), a portal session its key.
    assert memory["sso_keys_per_session"] >= 1 and memory["portal_keys_per_session"] >= 1
    assert memory["sso_bytes_per_session"] > 100 and memory["portal_bytes_per_session"] > 22


def test_profile_covers_every_step_and_every_process(bench_run: tuple[dict[str, Any], str]) -> None:
    results, _ = bench_run
    profile = results["profile"]
    assert list(profile) == [name for name, _ in LATER_SIGN_IN]
    for name, step in profile.items():
        assert set(SERVER) <= set(step["cpu_ms_by_process"]), name
        assert step["browser_requests_per_flow"] >= 1, name
        assert sum(step["answered_per_flow"].values()) >= 1, name
    # The password step is where argon2 runs, in auth.
    assert profile["password"]["answered_per_flow"]["auth"] >= 1
    whole = results["sign_in"]["later"]
    assert whole["browser_requests_per_flow"] == sum(s["browser_requests_per_flow"] for s in profile.values())
    assert positive(sum(whole["cpu_ms_by_process"][p] for p in SERVER))


def test_table_is_printed_and_holds_no_token(bench_run: tuple[dict[str, Any], str]) -> None:
    results, printed = bench_run
    for label in ("later sign-ins/s", "efficiency", "SSO re-entry flows/s", "portal / landing",
                  "Redis bytes per SSO session", "session check p50 / p99 ms at 500", "CPU ms per step"):  # fmt: skip
        assert label in printed
    # No token of the run (an id_token, a service token) is printed or written.
    for text in (printed, json.dumps(results)):
        assert "eyJ" not in text


def test_baseline_stack_is_measured_side_by_side(bench_run: tuple[dict[str, Any], str]) -> None:
    results, printed = bench_run
    baseline = results["baseline"]
    assert len(baseline["commit"]) == 40 and baseline["ref"] == "HEAD"
    for figures in (baseline, results):
        assert positive(figures["sign_in"]["later"]["server_cpu_ms"])
        assert positive(figures["sso_reentry"]["per_second"])
        assert positive(figures["pages"]["ratio"])
        assert list(figures["profile"]) == [name for name, _ in LATER_SIGN_IN]
    assert "side by side, same run" in printed


def test_template_puts_each_sessions_own_ids_back_in_place() -> None:
    first, second = SessionIds.of("0a0b0c0d", 0), SessionIds.of("0a0b0c0d", 7)
    wire = (
        b"*2\r\n$4\r\nHSET\r\n$22\r\n" + first.slots()["sso_ref"].encode() + b"\r\n" + first.user_id.encode()
    )
    template = Template.cut(wire, {"sso_ref": first.slots()["sso_ref"], "user_id": first.user_id}, 1)
    filled = template.fill({k: v.encode() for k, v in second.slots().items()})
    assert filled == wire.replace(
        first.slots()["sso_ref"].encode(), second.slots()["sso_ref"].encode()
    ).replace(first.user_id.encode(), second.user_id.encode())
    assert len(filled) == len(wire)


def test_percentile() -> None:
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)
    assert percentile([5.0], 99) == 5.0


def test_replicas_and_proxies_count_as_their_service() -> None:
    assert [process_group(name) for name in ("auth", "auth-2", "session-3", "gateway", "peers-proxy")] == [
        "auth", "auth", "session", "nginx", "nginx"
    ]  # fmt: skip
    with pytest.raises(RuntimeError):
        process_group("something-else")
