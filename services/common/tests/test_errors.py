"""ErrorMiddleware: one JSON log line with the request id and the route; a calm page, never a trace."""

import json
import logging
from collections.abc import Iterator

import asyncpg
import pytest
import redis.exceptions
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from services.common.errors import UNAVAILABLE_MESSAGE, ErrorMiddleware, outage_of, responder
from services.common.logging import JsonFormatter, RequestContextMiddleware


def make_app(error: Exception) -> FastAPI:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        raise error

    respond = responder(None)
    app.add_middleware(ErrorMiddleware, respond=respond)
    app.add_middleware(RequestContextMiddleware)
    return app


@pytest.fixture
def json_lines(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, object]]]:
    """The records of the request, formatted as the services log them (JSON lines)."""
    lines: list[dict[str, object]] = []
    formatter = JsonFormatter("test")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(formatter.format(record)))

    handler = Collect()
    logging.getLogger().addHandler(handler)
    yield lines
    logging.getLogger().removeHandler(handler)


def test_an_unexpected_error_is_logged_once_with_the_request_id_and_route(
    json_lines: list[dict[str, object]],
) -> None:
    client = TestClient(make_app(RuntimeError("secret detail")), raise_server_exceptions=False)

    response = client.get("/things/42", headers={"x-request-id": "req-123"})

    assert response.status_code == 500
    assert response.json() == {
        "error": "internal_error",
        "message": "Something went wrong on our side. Please try again.",
    }
    assert "secret detail" not in response.text
    errors = [line for line in json_lines if line["logger"] == "services.common.errors"]
    assert len(errors) == 1, json_lines
    assert errors[0]["request_id"] == "req-123"
    assert errors[0]["route"] == "/things/{thing_id}"
    assert errors[0]["level"] == "error"
    assert "RuntimeError" in str(errors[0]["exc"])


@pytest.mark.parametrize(
    ("error", "dependency"),
    [
        (redis.exceptions.ConnectionError("refused"), "redis"),
        (redis.exceptions.TimeoutError("slow"), "redis"),
        (redis.exceptions.ReadOnlyError("replica"), "redis"),
        (asyncpg.exceptions.ConnectionDoesNotExistError("gone"), "postgres"),
        (asyncpg.exceptions.CannotConnectNowError("starting"), "postgres"),
        (asyncpg.exceptions.AdminShutdownError("stopping"), "postgres"),
        (asyncpg.InterfaceError("connection is closed"), "postgres"),
    ],
)
def test_a_datastore_outage_is_a_503_with_the_calm_sentence(
    error: Exception, dependency: str, json_lines: list[dict[str, object]]
) -> None:
    assert outage_of(error) == dependency
    client = TestClient(make_app(error), raise_server_exceptions=False)

    response = client.get("/things/1", headers={"x-request-id": "req-9"})

    assert response.status_code == 503
    assert response.json()["message"] == UNAVAILABLE_MESSAGE
    warnings = [line for line in json_lines if line["logger"] == "services.common.errors"]
    assert [(w["level"], w["request_id"], w["dependency"]) for w in warnings] == [
        ("warning", "req-9", dependency)
    ]
    assert "exc" not in warnings[0]


def test_other_errors_are_no_outage() -> None:
    assert outage_of(ValueError("bug")) is None
    assert outage_of(redis.exceptions.ResponseError("WRONGTYPE")) is None
    assert outage_of(asyncpg.exceptions.UniqueViolationError("dup")) is None


def test_an_oauth_path_answers_json_to_a_browser_too() -> None:
    """A browser gets the calm page; the paths an app names in json_paths (auth's /auth/token) JSON."""
    app = FastAPI()

    @app.get("/auth/{page}")
    async def page(page: str) -> dict[str, str]:
        raise redis.exceptions.ConnectionError("refused")

    def error_page(request: object, status: int, message: object, code: str) -> HTMLResponse:
        return HTMLResponse(f"<p>{message}</p>", status_code=status)

    app.state.json_paths = ("/auth/token", "/auth/userinfo")
    app.add_middleware(ErrorMiddleware, respond=responder(error_page))
    client = TestClient(app, raise_server_exceptions=False)
    browser = {"accept": "text/html,application/xhtml+xml"}

    login = client.get("/auth/login", headers=browser)
    token = client.get("/auth/token", headers=browser)
    userinfo = client.get("/auth/userinfo", headers=browser)

    assert (login.status_code, login.headers["content-type"].split(";")[0]) == (503, "text/html")
    assert str(UNAVAILABLE_MESSAGE) in login.text
    for answer in (token, userinfo):
        assert answer.status_code == 503
        assert answer.json()["error"] == "unavailable"
