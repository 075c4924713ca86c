"""One error base class; one handler turns it into a calm page or a JSON body.

Errors nobody expected, and a datastore that does not answer, are caught by ErrorMiddleware,
inside the request-context middleware: its one log line carries the request id and the route.
"""

import logging
from collections.abc import Callable

import asyncpg
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .i18n import Text, _
from .metrics import count_if_dependency_error, dependency_failed, dependency_of, route_of

log = logging.getLogger(__name__)

UNAVAILABLE_MESSAGE = _("Sign-in is unavailable right now. Please try again in a minute.")
UNEXPECTED_MESSAGE = _("Something went wrong on our side. Please try again.")

# A datastore that is down, restarting, failing over or refusing writes for a moment: the
# customer is asked to try again in a minute (503), and the clients reconnect by themselves.
REDIS_OUTAGES: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,  # MasterNotFoundError and BusyLoadingError among them
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica promoted away under an old connection
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError,
)
POSTGRES_OUTAGES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # CannotConnectNow, ConnectionDoesNotExist...
    asyncpg.InterfaceError,  # "connection is closed"
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash shutdown
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections
)


class ServiceError(Exception):
    """An expected refusal: a status, a stable machine code and a message fit for a customer."""

    status_code = 400
    code = "bad_request"
    message: Text = _("The request could not be processed.")

    def __init__(self, message: Text | None = None, *, detail: str | None = None) -> None:
        super().__init__(detail or str(message or self.message))
        if message is not None:
            self.message = message
        self.detail = detail


class BadRequest(ServiceError):
    pass


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"
    message: Text = _("You are not signed in.")


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"
    message: Text = _("This request is not allowed.")


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"
    message: Text = _("Not found.")


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"
    message: Text = _("This conflicts with the current state.")


class DependencyUnavailable(ServiceError):
    status_code = 503
    code = "unavailable"
    message = UNAVAILABLE_MESSAGE


def outage_of(error: BaseException) -> str | None:
    """ "redis" or "postgres" when the error says that datastore does not answer, else None."""
    if isinstance(error, REDIS_OUTAGES):
        return "redis"
    if isinstance(error, POSTGRES_OUTAGES):
        return "postgres"
    # A refused or reset socket, or a timeout, raised from inside one of the two clients.
    if isinstance(error, (OSError, TimeoutError)):
        return dependency_of(error)
    return None


def wants_json(request: Request) -> bool:
    """/internal/*, the paths the app names in app.state.json_paths, and JSON-only clients."""
    path = request.url.path
    json_paths: tuple[str, ...] = (
        getattr(request.app.state, "json_paths", ()) if "app" in request.scope else ()
    )
    return (
        path.startswith("/internal/")
        or path.startswith(json_paths)
        or "application/json" in request.headers.get("accept", "")
        and "text/html" not in request.headers.get("accept", "")
    )


Responder = Callable[[Request, int, str, Text], Response]


class ErrorMiddleware:
    """Turns an exception no handler took into one log line and a calm answer.

    A datastore outage is a 503 with UNAVAILABLE_MESSAGE (logged as a warning, no trace);
    anything else is a 500, logged with its trace. Pure ASGI, and placed inside
    RequestContextMiddleware, so the line has the request id; the route is the template.
    """

    def __init__(self, app: ASGIApp, respond: Responder) -> None:
        self.app = app
        self.respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def send_tracking(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as error:
            route = route_of(scope)
            outage = outage_of(error)
            fields = {"route": route, "method": scope["method"], "error": type(error).__name__}
            if outage is not None:
                dependency_failed(outage)
                log.warning(
                    "%s unavailable on %s %s: %s",
                    outage,
                    scope["method"],
                    route,
                    type(error).__name__,
                    extra={"fields": {**fields, "dependency": outage}},
                )
                status, code, message = 503, "unavailable", UNAVAILABLE_MESSAGE
            else:
                count_if_dependency_error(error)
                log.error(
                    "unexpected error on %s %s",
                    scope["method"],
                    route,
                    exc_info=error,
                    extra={"fields": fields},
                )
                status, code, message = 500, "internal_error", UNEXPECTED_MESSAGE
            if response_started:  # too late for an answer of ours: the client sees a cut response
                return
            await self.respond(Request(scope), status, code, message)(scope, receive, send)


def responder(render_error_page: Callable[[Request, int, Text, str], Response] | None) -> Responder:
    """A JSON body where wants_json, else the service's error page (JSON when it has none)."""

    def respond(request: Request, status: int, code: str, message: Text) -> Response:
        if render_error_page is None or wants_json(request):
            return JSONResponse({"error": code, "message": str(message)}, status_code=status)
        return render_error_page(request, status, message, code)

    return respond


def install_error_handlers(app: FastAPI, respond: Responder) -> None:
    """Expected refusals become respond(...); everything else is left to ErrorMiddleware."""

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> Response:
        if isinstance(error, DependencyUnavailable):
            # Whoever found the dependency down has logged it (the service client, say).
            return respond(request, error.status_code, error.code, error.message)
        log.info(
            "refused %s %s: %s %s",
            request.method,
            request.url.path,
            error.code,
            error.detail or error.message,
        )
        return respond(request, error.status_code, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        # Log where the input was wrong, never the input itself: it may hold a password.
        fields = [".".join(str(part) for part in item.get("loc", ())) for item in error.errors()]
        log.info("invalid input on %s %s: %s", request.method, request.url.path, fields)
        return respond(request, 400, "invalid_input", _("Some of the information sent was not valid."))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        messages = {404: _("This page does not exist."), 405: _("This action is not allowed here.")}
        message = messages.get(error.status_code, ServiceError.message)
        return respond(request, error.status_code, "http_error", message)
