"""The frame every service's create_app() builds on, so all four have the same shape."""

import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from .errors import ErrorMiddleware, install_error_handlers, responder
from .health import Check, Readiness, not_ready_on_sigterm
from .i18n import LanguageMiddleware
from .input_guard import InputGuard
from .keys import SigningKey, derived_secret, jwks
from .logging import RequestContextMiddleware
from .metrics import MetricsMiddleware, exposition
from .settings import ServiceSettings
from .web import COMMON_DIR, BrowserIds, BrowserMiddleware, Pages

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class ServiceState(Protocol):
    """What a service's lifespan makes once per process (its state.py) and its routes depend on."""

    @property
    def readiness_checks(self) -> Mapping[str, Check]: ...


StateT = TypeVar("StateT", bound=ServiceState)


def serving(open_state: Callable[[SigningKey], AbstractAsyncContextManager[ServiceState]]) -> Lifespan:
    """The lifespan that keeps the service's state open, and /readyz asking its dependencies."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_state(app.state.signing_key) as state:
            app.state.service = state
            for dependency, check in state.readiness_checks.items():
                app.state.readiness.add_check(dependency, check)
            yield

    return lifespan


def state_dependency(kind: type[StateT]) -> Callable[[Request], Coroutine[Any, Any, StateT]]:
    """An async FastAPI dependency giving the routes their service's state, typed."""

    async def current_state(request: Request) -> StateT:
        state = request.app.state.service
        if not isinstance(state, kind):
            raise TypeError(f"the app's state is a {type(state).__name__}, not a {kind.__name__}")
        return state

    return current_state


def build_app(
    *,
    name: str,
    settings: ServiceSettings,
    lifespan: Lifespan,
    pages: Pages | None = None,
    static_prefix: str | None = None,
    json_paths: tuple[str, ...] = (),
) -> FastAPI:
    """json_paths: path prefixes whose errors are JSON even for a browser (auth's /auth/token)."""
    # /readyz: false until the service's lifespan has started, and again from SIGTERM on.
    # The service's lifespan adds its dependency checks: app.state.readiness.add_check(...).
    readiness = Readiness()
    if inspect.isasyncgenfunction(lifespan):  # a bare generator, as FastAPI also accepts
        lifespan = asynccontextmanager(lifespan)

    @asynccontextmanager
    async def lifespan_with_readiness(app: FastAPI) -> AsyncIterator[None]:
        with not_ready_on_sigterm(readiness):
            async with lifespan(app):
                readiness.start()
                try:
                    yield
                finally:
                    readiness.stop("shutting down")

    app = FastAPI(
        title=f"sso-{name}",
        lifespan=lifespan_with_readiness,
        docs_url=None,
        redoc_url=None,
        # We export Prometheus metrics and JSON logs, no OpenTelemetry: with FastAPI's native
        # telemetry on, it asks the global providers on every request whether one was set up.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.readiness = readiness
    app.state.settings = settings
    app.state.pages = pages
    app.state.json_paths = json_paths
    app.state.signing_key = SigningKey.from_file(settings.signing_key_file)
    service_jwks = jwks(app.state.signing_key, settings.published_key_files)

    respond = responder(pages.error_page if pages is not None else None)
    install_error_handlers(app, respond)
    # Innermost of ours: NUL and non-UTF-8 input is refused before any route sees it, and the
    # refusal still gets the browser cookie and security headers from the middleware around it.
    app.add_middleware(InputGuard, respond=respond)
    if pages is not None:
        # Only auth issues browser ids (services.common.web.BrowserIds): every sign-in starts there.
        app.add_middleware(
            BrowserMiddleware,
            csrf_secret=derived_secret(app.state.signing_key, "csrf"),
            secure_cookies=settings.peers.secure_cookies,
            issuer=BrowserIds(derived_secret(app.state.signing_key, "browser-id"))
            if name == "auth"
            else None,
        )
    # Inside the metrics and the request context: the 503 or 500 is timed, and logged with its id.
    app.add_middleware(ErrorMiddleware, respond=respond)
    if pages is not None:
        # Outside ErrorMiddleware, so the calm 500 and 503 pages speak the customer's language too.
        app.add_middleware(LanguageMiddleware, secure_cookies=settings.peers.secure_cookies)
    app.add_middleware(MetricsMiddleware)
    # Added last, so it runs first: every log line of the request carries its id.
    app.add_middleware(RequestContextMiddleware)

    if static_prefix is not None:
        app.mount(f"{static_prefix}/static", StaticFiles(directory=COMMON_DIR / "static"), name="static")

    @app.get("/internal/jwks", include_in_schema=False)
    async def internal_jwks() -> dict[str, Any]:
        return service_jwks

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Probes and Prometheus reach the pod directly; the gateway routes none of these three.
    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ready, checks = await readiness.report()
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    return app


async def no_lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
