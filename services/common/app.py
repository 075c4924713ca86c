"""The frame every service's create_app() builds on, so all four have the same shape."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from .errors import install_error_handlers
from .keys import SigningKey, jwks
from .logging import RequestContextMiddleware
from .settings import ServiceSettings
from .web import COMMON_DIR, BrowserMiddleware, Pages

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def build_app(
    *,
    name: str,
    settings: ServiceSettings,
    lifespan: Lifespan,
    pages: Pages | None = None,
    static_prefix: str | None = None,
) -> FastAPI:
    app = FastAPI(title=f"sso-{name}", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.pages = pages
    app.state.signing_key = SigningKey.from_file(settings.signing_key_file)
    service_jwks = jwks(app.state.signing_key, settings.published_key_files)

    if pages is not None:
        install_error_handlers(app, pages.error_page)
        app.add_middleware(BrowserMiddleware, secure_cookies=settings.peers.secure_cookies)
    else:
        install_error_handlers(app, lambda request, status, message: JSONResponse({"error": message}, status))
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

    return app


async def no_lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
