"""`make bench-floor` in miniature, so it cannot rot: a few sign-ins, no thresholds.

The figures belong in docs/performance.md; this proves the tool still drives a whole later
sign-in through its nginx to the four floor services, with their internal calls, and measures
every process of it.
"""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bench.floor import INTERNAL_CALLS, SERVICES, SIGN_IN, sign_in

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def floor_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    output = tmp_path_factory.mktemp("bench-floor") / "floor.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.floor"],
        cwd=ROOT,
        env={**os.environ, "FLOOR_SIGN_INS": "12", "FLOOR_CONCURRENCY": "3", "FLOOR_OUTPUT": str(output)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(output.read_text()), result.stdout


def test_a_sign_in_is_the_real_ones_requests() -> None:
    # The 12 browser requests of a later sign-in (bench-routes counts the same per service).
    assert len(SIGN_IN) == 12 and INTERNAL_CALLS == 5
    assert [path for _, path, _ in SIGN_IN].count("/auth/authorize?client_id=portal") == 1


def test_every_process_spends_cpu_and_the_ratios_follow(floor_run: tuple[dict[str, Any], str]) -> None:
    results, stdout = floor_run
    floor = results["floor"]
    assert floor["sign_ins"] == 12 and floor["concurrency"] == 3
    by_process = floor["cpu_ms_per_sign_in_by_process"]
    assert set(by_process) == {*SERVICES, "nginx"}
    assert sum(by_process.values()) == pytest.approx(floor["cpu_ms_per_sign_in"])
    assert floor["cpu_ms_per_sign_in"] > 0
    argon2 = results["argon2"]["cpu_ms"]
    assert argon2 > 0
    assert results["best_efficiency"] == pytest.approx(argon2 / (argon2 + floor["cpu_ms_per_sign_in"]))
    assert results["left_at_half"] == pytest.approx(argon2 - floor["cpu_ms_per_sign_in"])
    assert "best efficiency on this floor" in stdout


async def _sign_in_against_a_server_that_answers_200_to_all() -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as client:
            await sign_in(client, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def test_a_wrong_answer_stops_the_floor() -> None:
    """The driver checks every status: a floor whose redirects are missing measures nothing."""
    with pytest.raises(RuntimeError, match="GET /portal/login answered 200, not 302"):
        asyncio.run(_sign_in_against_a_server_that_answers_200_to_all())
