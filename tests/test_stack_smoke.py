"""The stack starts, and the gateway shows the outside world only what it should."""

import time
from pathlib import Path

import httpx
import pytest

from devstack import Stack

SECURITY_HEADERS = (
    "X-Content-Type-Options",
    "Referrer-Policy",
    "X-Frame-Options",
    "Content-Security-Policy",
)


def test_landing_page_answers_through_the_gateway(stack: Stack) -> None:
    response = httpx.get(f"{stack.gateway_url}/")

    assert response.status_code == 200
    assert "Login" in response.text


def test_security_headers_are_sent_once(stack: Stack) -> None:
    response = httpx.get(f"{stack.gateway_url}/")

    for name in SECURITY_HEADERS:
        assert len(response.headers.get_list(name)) == 1, name
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["/internal/jwks", "/internal/sso-sessions/lookup", "/healthz", "/session/"])
def test_internal_paths_are_not_reachable_from_outside(stack: Stack, path: str) -> None:
    for method in ("GET", "POST"):
        response = httpx.request(method, f"{stack.gateway_url}{path}")

        assert response.status_code == 404
        assert "nginx" not in response.text.lower()


@pytest.mark.parametrize("service", ["auth", "mfa", "session", "portal"])
def test_each_service_answers_healthz_directly(stack: Stack, service: str) -> None:
    response = httpx.get(f"{stack.env[f'SSO_{service.upper()}_URL']}/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_gateway_does_not_reveal_its_version(stack: Stack) -> None:
    response = httpx.get(f"{stack.gateway_url}/no-such-page")

    assert response.headers.get("Server", "nginx") == "nginx"


def test_too_large_body_gets_a_calm_page(stack: Stack) -> None:
    response = httpx.post(f"{stack.gateway_url}/auth/login/username", content=b"x" * 100_000)

    assert response.status_code == 413
    assert "Request too large" in response.text


def _wait_until_logged(log: Path, text: str, timeout: float = 5.0) -> str:
    """The log's content once it holds `text`: nginx writes the line just after it answers."""
    deadline = time.monotonic() + timeout
    while text not in (content := log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return content


def test_query_strings_are_not_in_the_gateway_access_log(stack: Stack) -> None:
    httpx.get(f"{stack.gateway_url}/portal/callback?code=SHOULD_NOT_APPEAR&state=x")

    access_log = _wait_until_logged(stack.gateway_access_log, '"/portal/callback"')
    assert '"/portal/callback"' in access_log  # the request was logged ...
    assert "SHOULD_NOT_APPEAR" not in access_log  # ... without its code


def test_query_strings_are_not_in_the_service_logs(stack: Stack) -> None:
    httpx.get(f"{stack.gateway_url}/portal/callback?code=SHOULD_NOT_APPEAR_EITHER&state=x")
    _wait_until_logged(stack.gateway_access_log, '"/portal/callback"')
    time.sleep(0.5)  # the services' own lines may follow their answer by a moment

    for service in ("auth", "mfa", "session", "portal"):
        assert "SHOULD_NOT_APPEAR_EITHER" not in stack.log_path(service).read_text(), service
