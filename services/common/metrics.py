"""The Prometheus metrics every service exports at /metrics: each defined once, here.

Labels stay bounded: routes are FastAPI's path templates (never the raw path), outcomes and
steps are the audit trail's fixed words. Prometheus adds the service and pod from its target.
"""

import time

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SIGN_IN_ATTEMPTS = Counter(
    "sso_sign_in_attempts",
    "Sign-in steps by step (username, password, otp, complete) and outcome (ok, invalid, locked, ...).",
    ["step", "outcome"],
)
LOCKOUTS = Counter(
    "sso_lockouts",
    "Sign-in locks imposed by auth's throttle, by reason (locked_now, locked_until_unlock; ip_noisy: an address past its failure limit, which refuses nothing).",
    ["reason"],
)
ENROLLMENTS = Counter(
    "sso_enrollments", "Authenticator set-ups, by outcome (started, confirmed).", ["outcome"]
)
ACTIVE_SSO_SESSIONS = Gauge(
    "sso_active_sso_sessions",
    "Live SSO sessions in Redis, as last counted by this session replica (every replica counts all: use max).",
)
REQUEST_DURATION = Histogram(
    "sso_http_request_duration_seconds",
    "Time to answer a request, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
DEPENDENCY_ERRORS = Counter(
    "sso_dependency_errors",
    "Failed calls to a dependency (postgres, redis, or a peer service: auth, mfa, session, portal).",
    ["dependency"],
)

# Hit every few seconds by the kubelet and Prometheus: timing them would drown the real routes.
UNTIMED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


def count_audit_event(event: str, outcome: str) -> None:
    """Every sign-in step and enrollment is audited (docs/architecture.md, Audit): count it there."""
    step = event.removeprefix("sign_in.")
    if step != event:
        SIGN_IN_ATTEMPTS.labels(step=step, outcome=outcome).inc()
    elif event == "enrollment":
        ENROLLMENTS.labels(outcome=outcome).inc()


def dependency_failed(dependency: str) -> None:
    DEPENDENCY_ERRORS.labels(dependency=dependency).inc()


def dependency_of(error: BaseException) -> str | None:
    """postgres or redis when the error came out of their client libraries, else None."""
    names = [type(error).__module__]
    traceback = error.__traceback__
    while traceback is not None:
        names.append(str(traceback.tb_frame.f_globals.get("__name__", "")))
        traceback = traceback.tb_next
    for name in names:
        top = name.split(".")[0]
        if top == "asyncpg":
            return "postgres"
        if top == "redis":
            return "redis"
    return None


def count_if_dependency_error(error: BaseException) -> None:
    dependency = dependency_of(error)
    if dependency is not None:
        dependency_failed(dependency)


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def route_of(scope: Scope) -> str:
    """The route template FastAPI matched ("/auth/login"), a mount's prefix, or "unmatched"."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    root_path = scope.get("root_path") or ""
    return root_path if root_path else "unmatched"


# REQUEST_DURATION's children by (method, route, status): labels() validates and locks each call.
# Bounded as the labels are (route templates, not paths); REGISTRY keeps the same children anyway.
_request_durations: dict[tuple[str, str, int], Histogram] = {}


def request_duration(method: str, route: str, status: int) -> Histogram:
    key = (method, route, status)
    child = _request_durations.get(key)
    if child is None:
        child = _request_durations[key] = REQUEST_DURATION.labels(
            method=method, route=route, status=str(status)
        )
    return child


class MetricsMiddleware:
    """Times every request by route template, method and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTIMED_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            request_duration(scope["method"], route_of(scope), status).observe(time.perf_counter() - started)
