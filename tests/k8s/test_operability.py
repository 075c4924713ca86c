"""What probes and Prometheus see on a pod: /readyz, /metrics, and readiness dropping on SIGTERM."""

import asyncio
import json
import os
import re
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, FastAPI

from devstack import Stack, free_ports
from services.auth.app import create_app as create_auth
from services.auth.settings import Settings as AuthSettings
from services.common import metrics
from services.common.app import build_app, no_lifespan
from services.common.health import Readiness, not_ready_on_sigterm
from services.common.keys import generate_private_pem
from services.common.settings import ServiceSettings
from services.session.app import create_app as create_session
from services.session.settings import Settings as SessionSettings

from ..customer import Customer


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels or {})
    return value or 0.0


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "signing.pem"
    path.write_bytes(generate_private_pem("ec"))
    return path


@pytest.fixture
def tiny_app(key_file: Path) -> FastAPI:
    """The frame every service gets (build_app), with one templated route of its own."""
    app = build_app(name="tiny", settings=ServiceSettings(signing_key_file=key_file), lifespan=no_lifespan)
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app.include_router(router)
    return app


async def asgi_get(app: FastAPI, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pod") as client:
        return await client.get(path, **kwargs)


# /metrics


async def test_metrics_are_served_in_prometheus_text_format(tiny_app: FastAPI) -> None:
    async with tiny_app.router.lifespan_context(tiny_app):
        response = await asgi_get(tiny_app, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    for family in (
        "sso_sign_in_attempts",
        "sso_lockouts",
        "sso_enrollments",
        "sso_active_sso_sessions",
        "sso_http_request_duration_seconds",
        "sso_dependency_errors",
    ):
        assert re.search(
            rf"^# TYPE {family}(_total)? (counter|gauge|histogram)$", response.text, re.MULTILINE
        ), family


async def test_latency_is_labelled_by_route_template_never_by_raw_path(tiny_app: FastAPI) -> None:
    route = {"method": "GET", "route": "/things/{thing_id}", "status": "200"}
    before = sample("sso_http_request_duration_seconds_count", route)
    async with tiny_app.router.lifespan_context(tiny_app):
        for thing_id in ("a1", "b2", "c3"):
            assert (await asgi_get(tiny_app, f"/things/{thing_id}")).status_code == 200
        assert (await asgi_get(tiny_app, "/no/such/path/x9")).status_code == 404
        exposed = (await asgi_get(tiny_app, "/metrics")).text
    assert sample("sso_http_request_duration_seconds_count", route) == before + 3
    assert (
        sample(
            "sso_http_request_duration_seconds_count",
            {"method": "GET", "route": "unmatched", "status": "404"},
        )
        >= 1
    )
    for raw in ("a1", "b2", "c3", "x9"):
        assert raw not in exposed
    # Probes and scrapes are not timed: they would drown the real routes.
    assert 'route="/metrics"' not in exposed and 'route="/readyz"' not in exposed


def test_audit_events_count_sign_in_steps_and_enrollments() -> None:
    labels = {"step": "password", "outcome": "invalid"}
    before = sample("sso_sign_in_attempts_total", labels)
    enrolled = sample("sso_enrollments_total", {"outcome": "confirmed"})
    metrics.count_audit_event("sign_in.password", "invalid")
    metrics.count_audit_event("enrollment", "confirmed")
    metrics.count_audit_event("logout", "portal")  # neither: counted nowhere
    assert sample("sso_sign_in_attempts_total", labels) == before + 1
    assert sample("sso_enrollments_total", {"outcome": "confirmed"}) == enrolled + 1


def test_errors_out_of_the_datastore_clients_count_as_dependency_errors() -> None:
    import asyncpg
    import redis.exceptions

    assert metrics.dependency_of(asyncpg.exceptions.ConnectionDoesNotExistError()) == "postgres"
    assert metrics.dependency_of(redis.exceptions.ConnectionError()) == "redis"
    assert metrics.dependency_of(ValueError()) is None


# /readyz


async def test_readyz_is_false_until_started_true_while_dependencies_answer_false_when_one_fails(
    key_file: Path,
) -> None:
    failing = {"now": False}

    async def database() -> None:
        if failing["now"]:
            raise ConnectionRefusedError("postgres down")

    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.readiness.add_check("postgres", database)
        yield

    from contextlib import asynccontextmanager

    app = build_app(
        name="tiny",
        settings=ServiceSettings(signing_key_file=key_file),
        lifespan=asynccontextmanager(lifespan),
    )
    assert (await asgi_get(app, "/readyz")).json() == {
        "status": "not ready",
        "checks": {"process": "starting"},
    }
    async with app.router.lifespan_context(app):
        ready = await asgi_get(app, "/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"postgres": "ok"}}
        errors = sample("sso_dependency_errors_total", {"dependency": "postgres"})
        failing["now"] = True
        down = await asgi_get(app, "/readyz")
        assert down.status_code == 503
        assert down.json()["checks"] == {"postgres": "failed"}
        assert "postgres down" not in down.text, "only the kind of failure, never its details"
        assert sample("sso_dependency_errors_total", {"dependency": "postgres"}) == errors + 1
        assert (await asgi_get(app, "/healthz")).status_code == 200, "alive, only not ready"
    assert (await asgi_get(app, "/readyz")).json()["checks"] == {"process": "stopping"}


@pytest.fixture
def sigterm_caught() -> Iterator[list[int]]:
    """SIGTERM, while a test sends it, reaches this list instead of ending pytest."""
    caught: list[int] = []
    original = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))
    try:
        yield caught
    finally:
        signal.signal(signal.SIGTERM, original)


def test_sigterm_marks_not_ready_then_does_what_it_did_before(sigterm_caught: list[int]) -> None:
    readiness = Readiness()
    readiness.start()
    with not_ready_on_sigterm(readiness):
        assert not readiness.stopping
        os.kill(os.getpid(), signal.SIGTERM)
        assert readiness.stopping
        assert sigterm_caught == [signal.SIGTERM], "the previous handler (uvicorn's) still runs"
    os.kill(os.getpid(), signal.SIGTERM)
    assert sigterm_caught == [signal.SIGTERM, signal.SIGTERM]


def _settings_for_session(stack: Stack, key_file: Path) -> SessionSettings:
    return SessionSettings(
        signing_key_file=key_file, redis_url=stack.redis_url, key_prefix=f"k8stest-{secrets.token_hex(4)}:"
    )


async def _serve(app: FastAPI) -> tuple[uvicorn.Server, "asyncio.Task[None]", str]:
    (port,) = free_ports(1)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, timeout_graceful_shutdown=5, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.05)
    return server, task, f"http://127.0.0.1:{port}"


async def test_a_real_uvicorn_session_pod_turns_unready_on_sigterm_before_it_drains(
    stack: Stack, key_file: Path, sigterm_caught: list[int]
) -> None:
    """uvicorn as the pod runs it, in this (main) thread, so the real SIGTERM path runs."""
    app = create_session(_settings_for_session(stack, key_file))
    server, task, url = await _serve(app)
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {"status": "ready", "checks": {"redis": "ok"}}
            assert "sso_active_sso_sessions" in (await http.get("/metrics")).text

        os.kill(os.getpid(), signal.SIGTERM)  # what the kubelet sends after preStop
        # The handler ran at once: readiness is false before uvicorn even starts draining.
        assert app.state.readiness.stopping
        assert server.should_exit
        during = await asgi_get(app, "/readyz")
        assert during.status_code == 503
        assert during.json()["checks"] == {"process": "stopping"}
        await asyncio.wait_for(task, 15)
    finally:
        server.should_exit = True
        await asyncio.wait({task}, timeout=15)
    assert sigterm_caught == [signal.SIGTERM], "uvicorn re-raises the signal it handled after its drain"


async def test_auth_is_ready_only_while_postgres_and_redis_answer(stack: Stack, tmp_path: Path) -> None:
    keys = {name: tmp_path / f"{name}.pem" for name in ("signing", "oidc")}
    keys["signing"].write_bytes(generate_private_pem("ec"))
    keys["oidc"].write_bytes(generate_private_pem("rsa"))
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        dead_redis = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
    for redis_url, expected in ((stack.redis_url, "ok"), (dead_redis, "failed")):
        app = create_auth(
            AuthSettings(
                signing_key_file=keys["signing"],
                oidc_key_file=keys["oidc"],
                database_url=stack.database_url,
                redis_url=redis_url,
            )
        )
        async with app.router.lifespan_context(app):
            response = await asgi_get(app, "/readyz")
        assert response.json()["checks"] == {"postgres": "ok", "redis": expected}
        assert response.status_code == (200 if expected == "ok" else 503)


# Through the running product


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_the_gateway_request_id_is_in_the_gateway_and_service_logs(stack: Stack) -> None:
    response = httpx.get(f"{stack.gateway_url}/")
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id), "nginx's $request_id, passed on and echoed"
    # Each writes its line once the answer is on its way: give them a moment.
    deadline = time.monotonic() + 10
    while True:
        gateway = [e for e in _json_lines(stack.gateway_access_log) if e.get("request_id") == request_id]
        portal = [e for e in _json_lines(stack.log_path("portal")) if e.get("request_id") == request_id]
        if (gateway and portal) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert gateway and portal
    assert all(entry["service"] == "portal" for entry in portal)


def test_a_sign_in_attempt_shows_in_auth_metrics_on_the_pod_never_through_the_gateway(stack: Stack) -> None:
    auth_url = stack.env["SSO_AUTH_URL"]

    def password_attempts() -> float:
        text = httpx.get(f"{auth_url}/metrics").text
        found = re.findall(r"^sso_sign_in_attempts_total\{([^}]*)\} ([0-9.e+]+)$", text, re.MULTILINE)
        return sum(float(value) for labels, value in found if 'step="password"' in labels)

    before = password_attempts()
    customer = Customer(stack.gateway_url)
    try:
        page = customer.start_login()
        page = customer.enter_username(page, f"nobody-{secrets.token_hex(4)}")
        page = customer.enter_password(page, "not the password")
        assert page.status == 401
    finally:
        customer.close()
    assert password_attempts() == before + 1
    assert httpx.get(f"{stack.gateway_url}/metrics").status_code == 404
    ready = httpx.get(f"{auth_url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}


def test_alerts_and_the_runbook_query_only_metrics_the_services_export() -> None:
    from .manifests import ROOT, build, find

    exported = set()
    for family in metrics.REGISTRY.collect():
        for sample_ in family.samples:
            exported.add(sample_.name)
    rule = find(build("prod"), "PrometheusRule", "sso-alerts")
    expressions = [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]
    runbook = (ROOT / "docs" / "operations.md").read_text()
    queries = re.findall(r"```promql\n(.*?)```", runbook, re.DOTALL)
    assert queries, "the runbook has example queries"
    used = set(re.findall(r"\bsso_[a-z_]+", "\n".join([*expressions, *queries])))
    assert {"sso_sign_in_attempts_total", "sso_lockouts_total", "sso_dependency_errors_total"} <= used
    for name in used:
        family = re.sub(r"_(total|bucket|count|sum)$", "", name)
        assert name in exported or family in {f.name for f in metrics.REGISTRY.collect()}, name
