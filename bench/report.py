"""The bench's table, and the issue's targets checked against the figures."""

import statistics
from typing import Any

from .pages import PageRun

PROCESSES = ("auth", "mfa", "session", "portal", "nginx", "postgres", "redis", "load generator")
SERVER = PROCESSES[:-1]

# Issue 11: (target, long-term goal)
EFFICIENCY = (0.5, 0.8)
PAGE_RATIO = (0.4, 0.6)
SSO_BYTES = 500
PORTAL_BYTES = 400
LATENCY_GROWTH = 1.2


def per_service(answered: dict[str, float], flows: int) -> dict[str, float]:
    totals: dict[str, float] = {}
    for key, count in answered.items():
        service = key.split(" ", 1)[0]
        totals[service] = totals.get(service, 0.0) + count / flows
    return totals


def page_summary(run: PageRun) -> dict[str, Any]:
    by_process = run.cpu_ms_per_page()
    return {
        "path": run.path,
        "requests": run.requests,
        "per_second": run.per_second,
        "p50_ms": run.p50_ms,
        "p99_ms": run.p99_ms,
        "server_cpu_ms": sum(by_process.get(name, 0.0) for name in SERVER),
        "cpu_ms_by_process": by_process,
    }


def pages_summary(runs: list[PageRun]) -> dict[str, Any]:
    """Several ab runs of one page as one: the rate over all of them, the median p50 and p99."""
    requests = sum(run.requests for run in runs)
    seconds = sum(run.requests / run.per_second for run in runs)
    cpu: dict[str, float] = {}
    for run in runs:
        for name, spent in run.cpu_seconds.items():
            cpu[name] = cpu.get(name, 0.0) + spent
    by_process = {name: 1000 * spent / requests for name, spent in cpu.items()}
    return {
        "path": runs[0].path,
        "requests": requests,
        "per_second": requests / seconds,
        "p50_ms": statistics.median(run.p50_ms for run in runs),
        "p99_ms": statistics.median(run.p99_ms for run in runs),
        "server_cpu_ms": sum(by_process.get(name, 0.0) for name in SERVER),
        "cpu_ms_by_process": by_process,
        "rounds": [page_summary(run) for run in runs],
    }


def targets(results: dict[str, Any]) -> dict[str, Any]:
    memory = results["session_store"]["memory"]
    latency = results["session_store"]["latency"]
    small, large = (latency[key]["portal_check"] for key in sorted(latency, key=int))
    growth = {p: large[f"{p}_ms"] / small[f"{p}_ms"] for p in ("p50", "p99")}
    return {
        "efficiency": {
            "value": results["sign_in"]["efficiency"],
            "target": EFFICIENCY[0],
            "goal": EFFICIENCY[1],
        },
        "page_ratio": {"value": results["pages"]["ratio"], "target": PAGE_RATIO[0], "goal": PAGE_RATIO[1]},
        "sso_bytes": {"value": memory["sso_bytes_per_session"], "target": SSO_BYTES},
        "portal_bytes": {"value": memory["portal_bytes_per_session"], "target": PORTAL_BYTES},
        "check_p50_growth": {"value": growth["p50"], "target": LATENCY_GROWTH},
        "check_p99_growth": {"value": growth["p99"], "target": LATENCY_GROWTH},
    }


def _met(name: str, target: dict[str, Any]) -> str:
    higher_is_better = name in ("efficiency", "page_ratio")
    met = target["value"] >= target["target"] if higher_is_better else target["value"] <= target["target"]
    return "met" if met else "NOT met"


def _both_met(goals: dict[str, Any], *names: str) -> str:
    return "met" if all(_met(name, goals[name]) == "met" for name in names) else "NOT met"


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        cell.rjust(width) if i else cell.ljust(width)
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
    )


def _grid(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [_row(header, widths), _row(["-" * w for w in widths], widths), *(_row(r, widths) for r in rows)]


def table(results: dict[str, Any]) -> str:
    sign_in, reentry, pages = results["sign_in"], results["sso_reentry"], results["pages"]
    later, argon2 = sign_in["later"], sign_in["argon2_verify"]
    store = results["session_store"]
    memory, latency = store["memory"], store["latency"]
    goals = results["targets"]
    small, large = sorted(latency, key=int)
    lines = [f"make bench, {results['date']}, {results['machine']['cpu']} x{results['machine']['cores']}", ""]
    lines += _grid(
        ["figure", "value", "target", ""],
        [
            ["1. later sign-ins/s", f"{later['per_second']:.1f}", "", ""],
            ["   sign-in p50 / p99 ms", f"{later['p50_ms']:.0f} / {later['p99_ms']:.0f}", "", ""],
            ["   server CPU ms per sign-in", f"{later['server_cpu_ms']:.1f}", "", ""],
            [f"   argon2id verify CPU ms ({argon2['memory_kib']} KiB, t={argon2['iterations']})",
             f"{argon2['cpu_ms']:.1f}", "", ""],
            ["   efficiency = argon2 / server CPU", f"{sign_in['efficiency']:.2f}", ">= 0.5 (goal 0.8)",
             _met("efficiency", goals["efficiency"])],
            ["2. SSO re-entry flows/s", f"{reentry['per_second']:.1f}", "", ""],
            ["   re-entry p50 / p99 ms", f"{reentry['p50_ms']:.1f} / {reentry['p99_ms']:.1f}", "", ""],
            ["   server CPU ms per re-entry", f"{reentry['server_cpu_ms']:.1f}", "", ""],
            ["3. portal page/s, p99 ms", f"{pages['portal']['per_second']:.0f}, {pages['portal']['p99_ms']:.1f}", "", ""],
            ["   landing page/s, p99 ms", f"{pages['landing']['per_second']:.0f}, {pages['landing']['p99_ms']:.1f}", "", ""],
            ["   portal / landing", f"{pages['ratio']:.2f}", ">= 0.4 (goal 0.6)", _met("page_ratio", goals["page_ratio"])],
            ["   the same by server CPU per page", f"{pages['cpu_ratio']:.2f}", "", ""],
            [f"4. Redis bytes per SSO session ({memory['sessions']})", f"{memory['sso_bytes_per_session']:.0f}",
             "<= 500", _met("sso_bytes", goals["sso_bytes"])],
            [f"   Redis bytes per portal session ({memory['sessions']})", f"{memory['portal_bytes_per_session']:.0f}",
             "<= 400", _met("portal_bytes", goals["portal_bytes"])],
            [f"   session check p50 / p99 ms at {small}", _pair(latency[small]["portal_check"]), "", ""],
            [f"   session check p50 / p99 ms at {large}", _pair(latency[large]["portal_check"]), "", ""],
            ["   growth p50 / p99", f"{goals['check_p50_growth']['value']:.2f} / {goals['check_p99_growth']['value']:.2f}",
             "<= 1.2", _both_met(goals, "check_p50_growth", "check_p99_growth")],
        ],
    )  # fmt: skip
    lines += ["", "5. CPU ms per step (later sign-in, step by step; re-entry; one page) and per process", ""]
    header = ["step", "requests", *PROCESSES, "server"]
    rows = []
    for name, step in results["profile"].items():
        rows.append(_profile_row(name, step))
    rows.append(_profile_row("sum of the steps", _summed(list(results["profile"].values()))))
    rows.append(_profile_row("later sign-in (whole)", later))
    rows.append(_profile_row("SSO re-entry", reentry))
    rows.append(_profile_row("portal page", pages["portal"]))
    rows.append(_profile_row("landing page", pages["landing"]))
    lines += _grid(header, rows)
    lines += ["", "requests answered per step, by service (browser requests and internal calls)", ""]
    services = ["auth", "mfa", "session", "portal"]
    lines += _grid(
        ["step", *services],
        [[name, *(f"{step['answered_per_flow'].get(s, 0.0):.1f}" for s in services)]
         for name, step in [*results["profile"].items(), ("SSO re-entry", reentry)]],
    )  # fmt: skip
    if "sign_in" in results.get("baseline", {}):
        lines += ["", *comparison(results)]
    return "\n".join(lines)


COMPARED = [
    ("later sign-ins/s", ("sign_in", "later", "per_second"), "{:.1f}"),
    ("server CPU ms per later sign-in", ("sign_in", "later", "server_cpu_ms"), "{:.1f}"),
    ("efficiency", ("sign_in", "efficiency"), "{:.3f}"),
    ("sign-in p50 ms", ("sign_in", "later", "p50_ms"), "{:.0f}"),
    ("SSO re-entry flows/s", ("sso_reentry", "per_second"), "{:.1f}"),
    ("re-entry p50 ms", ("sso_reentry", "p50_ms"), "{:.1f}"),
    ("re-entry p99 ms", ("sso_reentry", "p99_ms"), "{:.1f}"),
    ("server CPU ms per re-entry", ("sso_reentry", "server_cpu_ms"), "{:.2f}"),
    ("portal pages/s", ("pages", "portal", "per_second"), "{:.0f}"),
    ("portal page p99 ms", ("pages", "portal", "p99_ms"), "{:.1f}"),
    ("server CPU ms per portal page", ("pages", "portal", "server_cpu_ms"), "{:.2f}"),
    ("landing pages/s", ("pages", "landing", "per_second"), "{:.0f}"),
    ("portal / landing", ("pages", "ratio"), "{:.3f}"),
    ("portal / landing by CPU", ("pages", "cpu_ratio"), "{:.3f}"),
]


def _at(results: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = results
    for key in path:
        value = value[key]
    return float(value)


def comparison(results: dict[str, Any]) -> list[str]:
    """The baseline's stack and this tree's, measured in turns in the same run."""
    baseline = results["baseline"]
    rows = []
    for label, path, number in COMPARED:
        before, after = _at(baseline, path), _at(results, path)
        change = f"{100 * (after - before) / before:+.0f} %" if before else ""
        rows.append([label, number.format(before), number.format(after), change])
    header = [
        "side by side, same run",
        f"baseline {baseline['ref']} ({baseline['commit'][:9]})",
        "this tree",
        "change",
    ]
    return _grid(header, rows)


def _pair(check: dict[str, float]) -> str:
    return f"{check['p50_ms']:.3f} / {check['p99_ms']:.3f}"


def _summed(steps: list[dict[str, Any]]) -> dict[str, Any]:
    cpu: dict[str, float] = {}
    for step in steps:
        for name, ms in step["cpu_ms_by_process"].items():
            cpu[name] = cpu.get(name, 0.0) + ms
    return {
        "cpu_ms_by_process": cpu,
        "server_cpu_ms": sum(step["server_cpu_ms"] for step in steps),
        "browser_requests_per_flow": sum(step["browser_requests_per_flow"] for step in steps),
    }


def _profile_row(name: str, step: dict[str, Any]) -> list[str]:
    cpu = step["cpu_ms_by_process"]
    requests = step.get("browser_requests_per_flow")
    return [
        name,
        "" if requests is None else f"{requests:.1f}",
        *(f"{cpu.get(p, 0.0):.2f}" for p in PROCESSES),
        f"{step['server_cpu_ms']:.2f}",
    ]
