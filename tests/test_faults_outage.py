"""Redis or Postgres down: calm 503s, readiness false, liveness true; back up: the next request works.

The stack runs on a Redis and a Postgres of this module's own (throwaway servers on free
loopback ports), so stopping them touches nobody else.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from devstack import datastores
from devstack.stack import Stack
from services.common.clock import SystemClock
from services.common.keys import SigningKey
from services.common.service_client import SERVICE_TOKEN_TYPE
from services.common.tokens import TokenIssuer

from .customer import Customer
from .external_tools import totp_now
from .faults import (
    assert_calm_outage_page,
    assert_json_outage,
    log_lines,
    probe,
    throwaway_postgres,
    throwaway_redis,
)
from .flows import add_user, first_login, sign_in_to_code_page


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, dict]]:  # type: ignore[type-arg]
    state: Path = tmp_path_factory.mktemp("outage-datastores")
    with throwaway_redis(state) as redis, throwaway_postgres(state) as postgres:
        yield redis, postgres


@pytest.fixture(scope="module")
def stack(servers: tuple[dict, dict], make_stack: Callable[..., Stack]) -> Stack:  # type: ignore[type-arg]
    redis, postgres = servers
    return make_stack(
        stack_options={"redis_server_url": redis["url"], "postgres_server_url": postgres["url"]}
    )


def internal_lookup(stack: Stack) -> httpx.Response:
    """What auth sends the session service for a re-entry, signed with auth's own key."""
    issuer = TokenIssuer(SigningKey.from_file(stack.secrets_dir / "auth.pem"), "auth", SystemClock())
    token = issuer.issue("session", 60, token_type=SERVICE_TOKEN_TYPE)
    return httpx.post(
        f"{stack.service_url('session')}/internal/sso-sessions/lookup",
        json={"session_id": "x" * 43},
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )


def assert_one_logged_error(stack: Stack, service: str, request_id: str, route: str) -> None:
    """The failed request left one JSON line (besides the access line), with its id and route."""
    lines = [
        line
        for line in log_lines(stack, service)
        if line.get("request_id") == request_id and line.get("logger") != "access"
    ]
    assert len(lines) == 1, lines
    assert lines[0]["route"] == route
    assert lines[0]["level"] in ("warning", "error")


def test_redis_down_then_back(servers: tuple[dict, dict], stack: Stack) -> None:  # type: ignore[type-arg]
    redis, _postgres = servers
    signed_in_account, new_account = add_user(stack), add_user(stack)
    signed_in, newcomer = Customer(stack.gateway_url), Customer(stack.gateway_url)
    try:
        assert first_login(signed_in, signed_in_account).path == "/portal/"
        password_page = newcomer.enter_username(newcomer.start_login(), new_account.name)

        datastores.stop_throwaway_redis(redis)
        # The portal asks the session service, which asks Redis: a calm page, not a 500 or 502.
        assert_calm_outage_page(signed_in.get("/"))
        # Login again: auth asks the session service about the SSO cookie.
        assert_calm_outage_page(signed_in.get("/portal/login"))
        # The password step counts the attempt in Redis first.
        refused = newcomer.enter_password(password_page, new_account.password)
        assert_calm_outage_page(refused)
        assert_one_logged_error(
            stack, "auth", refused.response.headers["x-request-id"], "/auth/login/password"
        )
        assert_json_outage(internal_lookup(stack))
        assert probe(stack, "session", "/readyz") == 503
        assert probe(stack, "auth", "/readyz") == 503
        assert probe(stack, "mfa", "/readyz") == 200
        for service in ("auth", "mfa", "session", "portal"):
            assert probe(stack, service, "/healthz") == 200

        datastores.resume_redis(redis)
        # The very next request of each customer works: no stale pooled connection shows.
        assert signed_in.get("/").path == "/portal/"
        assert signed_in.get("/portal/login").path == "/portal/"
        assert newcomer.enter_password(password_page, new_account.password).path == "/mfa/"
        assert probe(stack, "session", "/readyz") == 200
        assert probe(stack, "auth", "/readyz") == 200
    finally:
        signed_in.close()
        newcomer.close()


def test_postgres_down_then_back(servers: tuple[dict, dict], stack: Stack) -> None:  # type: ignore[type-arg]
    _redis, postgres = servers
    signed_in_account, coding_account = add_user(stack), add_user(stack)
    signed_in, coder, newcomer = (Customer(stack.gateway_url) for _ in range(3))
    try:
        assert first_login(signed_in, signed_in_account).path == "/portal/"
        code_page = sign_in_to_code_page(coder, coding_account)

        datastores.pause_postgres(postgres)
        # auth reads the OIDC client from Postgres, or from what it remembers of it for at most
        # AUTH_CLIENT_URIS_CACHE_SECONDS: a newcomer then gets the username page, and the
        # username (its audit row) is where the outage shows. Either way the page is calm.
        login = newcomer.get("/portal/login")
        if login.status == 200:
            assert login.path == "/auth/authorize", login.text[:300]
            login = newcomer.enter_username(login, "somebody")
        assert_calm_outage_page(login)
        # A live SSO session still needs its user read from Postgres (a disabled account's
        # session counts for nothing).
        assert_calm_outage_page(signed_in.get("/portal/login"))
        # mfa keeps the set-up in Postgres.
        assert_calm_outage_page(coder.get("/mfa/"))
        token = httpx.post(
            f"{stack.gateway_url}/auth/token",
            data={"grant_type": "authorization_code", "code": "x" * 43, "redirect_uri": "x"},
            auth=("portal", "not-the-secret"),
            timeout=10,
        )
        assert_json_outage(token)
        assert probe(stack, "auth", "/readyz") == 503
        assert probe(stack, "mfa", "/readyz") == 503
        assert probe(stack, "session", "/readyz") == 200
        for service in ("auth", "mfa", "session", "portal"):
            assert probe(stack, service, "/healthz") == 200

        datastores.resume_postgres(postgres)
        assert signed_in.get("/portal/login").path == "/portal/"
        assert newcomer.start_login().path == "/auth/authorize"
        assert coder.get("/mfa/").status == 200
        page = coder.get("/mfa/")
        assert code_page.by_id("totp-secret") == page.by_id("totp-secret")
        assert probe(stack, "auth", "/readyz") == 200
        assert probe(stack, "mfa", "/readyz") == 200
    finally:
        for customer in (signed_in, coder, newcomer):
            customer.close()


def test_redis_losing_its_data_signs_out_but_keeps_enrolments(
    servers: tuple[dict, dict],  # type: ignore[type-arg]
    stack: Stack,
) -> None:
    redis_record, _postgres = servers
    account = add_user(stack)
    customer = Customer(stack.gateway_url)
    try:
        assert first_login(customer, account).path == "/portal/"
        with redis.Redis.from_url(redis_record["url"]) as client:
            client.flushall()
        # Signed out: the portal shows its landing page, Login asks for everything again...
        assert customer.get("/").path == "/"
        page = sign_in_to_code_page(customer, account)
        # ...but the authenticator is still there: the code page, not a set-up.
        assert page.soup.find(id="totp-secret") is None
        page = customer.enter_code(page, totp_now(account.secret, offset_steps=1))
        assert customer.press_continue(page).path == "/portal/"
    finally:
        customer.close()


def test_the_last_step_waits_out_a_redis_outage(
    servers: tuple[dict, dict],  # type: ignore[type-arg]
    stack: Stack,
) -> None:
    """Code accepted, then Redis goes: Continue answers 503, and works when Redis is back."""
    redis_record, _postgres = servers
    account = add_user(stack)
    customer = Customer(stack.gateway_url)
    try:
        setup = sign_in_to_code_page(customer, account)
        secret = setup.by_id("totp-secret").replace(" ", "")
        codes = customer.enter_setup_code(setup, totp_now(secret), save_codes=False)
        accepted = customer.http.post(
            "/mfa/recovery-codes/saved",
            data={**codes.form("/mfa/recovery-codes/saved"), "saved": "yes"},
            follow_redirects=False,
        )
        assert (accepted.status_code, accepted.headers["location"]) == (303, "/auth/login/complete")

        datastores.stop_throwaway_redis(redis_record)
        try:
            assert_calm_outage_page(customer.get("/auth/login/complete"))
        finally:
            datastores.resume_redis(redis_record)
        # The customer tries again, as the page asks: the step was not used up by the 503.
        page = customer.get("/auth/login/complete")
        assert page.status == 200, page.text[:300]
        assert customer.press_continue(page).path == "/portal/"
    finally:
        customer.close()
