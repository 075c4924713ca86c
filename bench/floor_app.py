"""The floor's four services (`make bench-floor`, bench/floor.py): a sign-in's requests and nothing else.

Each process is one of auth, mfa, session or portal, answering the same methods and paths as a
later sign-in asks of the real service, with the same internal calls, on the same uvicorn
(uvloop, httptools) behind nginx. No route does any work: no database, no Redis, no signing, no
template, no middleware. A page is a fixed 4 KiB of HTML, a redirect a bare 303, an internal
answer a fixed JSON object. What a sign-in costs here is what its requests cost before any of
the product's own code runs.

FLOOR_SERVICE names the service; FLOOR_PEERS is a JSON object of the peers' base URLs.
"""

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

PAGE = "<!doctype html><html><body>" + "x" * 4050 + "</body></html>"
ANSWER = {"ok": True, "id": "0" * 43, "expires_at": 1_800_000_000}
# The size of a service token's Authorization header, which every internal call carries.
HEADERS = {"authorization": "Bearer " + "t" * 600, "content-type": "application/json"}
REQUEST_BODY = json.dumps({"user_id": "0" * 36, "sid": "0" * 43}).encode()


def page() -> HTMLResponse:
    return HTMLResponse(PAGE)


def see_other(location: str, status_code: int = 303) -> RedirectResponse:
    return RedirectResponse(location, status_code=status_code)


def create_app() -> FastAPI:
    service = os.environ["FLOOR_SERVICE"]
    peers: dict[str, str] = json.loads(os.environ.get("FLOOR_PEERS", "{}"))
    calls: dict[str, aiohttp.ClientSession] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One pooled client per process, as services/common/http_client.py keeps.
        calls["client"] = aiohttp.ClientSession()
        try:
            yield
        finally:
            await calls["client"].close()

    async def call(peer: str, path: str) -> None:
        async with calls["client"].post(peers[peer] + path, data=REQUEST_BODY, headers=HEADERS) as answer:
            await answer.read()
            if answer.status != 200:
                raise RuntimeError(f"{peer}{path} answered {answer.status}")

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    if service == "portal":

        @app.get("/")
        async def landing() -> Response:
            return page()

        @app.get("/portal/login")
        async def login_start() -> Response:
            return see_other("/auth/authorize?client_id=portal", 302)

        @app.get("/portal/callback")
        async def callback() -> Response:
            await call("auth", "/auth/token")
            await call("session", "/internal/portal-sessions")
            return see_other("/portal/")

        @app.get("/portal/")
        async def home() -> Response:
            return page()

    if service == "auth":

        @app.get("/auth/authorize")
        async def authorize(sso: str | None = None) -> Response:
            # With an SSO session (after Continue) it looks it up and sends a code to the portal.
            if sso is None:
                return page()
            await call("session", "/internal/sso-sessions/lookup")
            return see_other("/portal/callback?code=c&state=s")

        @app.post("/auth/login/username")
        async def username() -> Response:
            return see_other("/auth/login")

        @app.get("/auth/login")
        async def password_page() -> Response:
            return page()

        @app.post("/auth/login/password")
        async def password() -> Response:
            return see_other("/mfa/")

        @app.get("/auth/login/complete")
        async def complete() -> Response:
            await call("session", "/internal/sso-sessions")
            return page()

        @app.post("/internal/attempts/begin")
        async def attempts_begin() -> Response:
            return JSONResponse(ANSWER)

        @app.post("/auth/token")
        async def token() -> Response:
            return JSONResponse(ANSWER)

    if service == "mfa":

        @app.get("/mfa/")
        async def code_page() -> Response:
            return page()

        @app.post("/mfa/verify")
        async def verify() -> Response:
            await call("auth", "/internal/attempts/begin")
            return see_other("/auth/login/complete")

    if service == "session":

        @app.post("/internal/sso-sessions")
        async def sso_create() -> Response:
            return JSONResponse(ANSWER)

        @app.post("/internal/sso-sessions/lookup")
        async def sso_lookup() -> Response:
            return JSONResponse(ANSWER)

        @app.post("/internal/portal-sessions")
        async def portal_create() -> Response:
            return JSONResponse(ANSWER)

    return app
