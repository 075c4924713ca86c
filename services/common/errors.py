"""One error base class; one handler turns it into a calm page or a JSON body."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .metrics import count_if_dependency_error

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """An expected refusal: a status, a stable machine code and a message fit for a customer."""

    status_code = 400
    code = "bad_request"
    message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, detail: str | None = None) -> None:
        super().__init__(detail or message or self.message)
        if message is not None:
            self.message = message
        self.detail = detail


class BadRequest(ServiceError):
    pass


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"
    message = "You are not signed in."


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"
    message = "This request is not allowed."


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"
    message = "Not found."


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"
    message = "This conflicts with the current state."


class DependencyUnavailable(ServiceError):
    status_code = 503
    code = "unavailable"
    message = "The service is briefly unavailable. Please try again in a moment."


def wants_json(request: Request) -> bool:
    return (
        request.url.path.startswith("/internal/")
        or "application/json" in request.headers.get("accept", "")
        and "text/html" not in request.headers.get("accept", "")
    )


def install_error_handlers(app: FastAPI, render_error_page) -> None:  # type: ignore[no-untyped-def]
    """render_error_page(request, status, message) -> HTMLResponse, for browser routes."""

    def respond(request: Request, status: int, code: str, message: str) -> Response:
        if wants_json(request):
            return JSONResponse({"error": code, "message": message}, status_code=status)
        response: HTMLResponse = render_error_page(request, status, message)
        return response

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> Response:
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
        return respond(request, 400, "invalid_input", "Some of the information sent was not valid.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        messages = {404: "This page does not exist.", 405: "This action is not allowed here."}
        message = messages.get(error.status_code, "The request could not be processed.")
        return respond(request, error.status_code, "http_error", message)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        count_if_dependency_error(error)
        return respond(request, 500, "internal_error", "Something went wrong on our side. Please try again.")
