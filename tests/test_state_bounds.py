"""Plain GETs that leave state behind (portal sessions, authorization codes, audit rows) cannot
fill Postgres or Redis: capped, rate-limited at the gateway, swept, audited once."""

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

from devstack.stack import Stack

from .customer import Customer
from .external_tools import totp_now
from .flows import add_user, customer_pool, first_login, replace_cookie, sign_in_to_code_page

PORTAL_SESSIONS_PER_SSO = 5  # SESSION_MAX_PORTAL_SESSIONS_PER_SSO


def drop_cookie(customer: Customer, name: str) -> None:
    for cookie in list(customer.http.cookies.jar):
        if cookie.name == name:
            customer.http.cookies.delete(name, domain=cookie.domain, path=cookie.path)


def test_a_loop_of_logins_leaves_only_a_few_portal_sessions(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    customer = customers()
    first_login(customer, add_user(stack))
    made = [customer.http.cookies.get("portal_session", path="/")]
    for _ in range(PORTAL_SESSIONS_PER_SSO + 3):
        # Without its portal cookie, each Login makes a new portal session on the same SSO session.
        drop_cookie(customer, "portal_session")
        assert customer.get("/portal/login").path == "/portal/"
        made.append(customer.http.cookies.get("portal_session", path="/"))
    assert len(set(made)) == len(made)

    live = []
    for session_id in made:
        probe = customers()
        probe.http.cookies.set("portal_session", session_id, domain="127.0.0.1", path="/")
        live.append(probe.get("/portal/").path == "/portal/")
    assert live == [False] * 4 + [True] * PORTAL_SESSIONS_PER_SSO, "the newest stay, the oldest go"


def hammer(customer: Customer, path: str, times: int = 200) -> list[int]:
    with ThreadPoolExecutor(max_workers=10) as pool:
        return list(
            pool.map(lambda _: customer.http.get(path, follow_redirects=False).status_code, range(times))
        )


def test_the_gateway_limits_the_gets_that_make_state(stack: Stack, customers: Callable[[], Customer]) -> None:
    signed_in = customers()
    first_login(signed_in, add_user(stack))
    authorize = signed_in.http.get("/portal/login", follow_redirects=False).headers["location"]
    # Each of these would otherwise store an authorization code.
    statuses = hammer(signed_in, authorize)
    assert 429 in statuses and set(statuses) <= {302, 429}, sorted(set(statuses))

    for path, answer in (("/mfa/", 400), ("/portal/callback?code=x&state=y", 400)):
        statuses = hammer(customers(), path)
        assert 429 in statuses and set(statuses) <= {answer, 429}, (path, sorted(set(statuses)))


def test_a_replayed_step_token_is_audited_once(stack: Stack, customers: Callable[[], Customer]) -> None:
    account = add_user(stack)
    first_login(customers(), account)
    customer = customers()
    page = sign_in_to_code_page(customer, account)
    used, browser = customer.http.cookies.get("login_step", path="/"), customer.http.cookies["browser"]
    assert customer.enter_code(page, totp_now(account.secret, 1)).path == "/auth/login/complete"

    replace_cookie(customer, "browser", browser)  # the id from before the sign-in, bound to the token
    for _ in range(10):
        replace_cookie(customer, "login_step", used)
        assert customer.get("/mfa/").status == 400
    result = stack.ssoctl("audit", account.name)
    assert result.returncode == 0, result.stderr
    replays = [line for line in result.stdout.splitlines() if "sign_in.otp" in line and "replayed" in line]
    assert len(replays) == 1, result.stdout


STEP_TOKEN_TTL_SECONDS = 3


@pytest.fixture(scope="module")
def quick_sweep(make_stack: Callable[..., Stack]) -> Stack:
    """Everything short-lived, and auth's sweep every second."""
    return make_stack(
        AUTH_AUTHORIZATION_CODE_TTL_SECONDS=1,
        AUTH_ACCESS_TOKEN_TTL_SECONDS=1,
        AUTH_CLEANUP_INTERVAL_SECONDS=1,
        AUTH_STEP_TOKEN_TTL_SECONDS=STEP_TOKEN_TTL_SECONDS,
    )


def authorization_codes(stack: Stack) -> int:
    async def count() -> int:
        connection = await asyncpg.connect(stack.database_url, server_settings={"search_path": "auth"})
        try:
            return int(await connection.fetchval("SELECT count(*) FROM authorization_code"))
        finally:
            await connection.close()

    return asyncio.run(count())


def test_expired_authorization_codes_are_swept(quick_sweep: Stack) -> None:
    with customer_pool(quick_sweep.gateway_url) as customers:
        customer = customers()
        first_login(customer, add_user(quick_sweep))
        for _ in range(5):
            # Codes no client will ever redeem: the browser never goes on to the portal's callback.
            authorize = customer.http.get("/portal/login", follow_redirects=False).headers["location"]
            assert "code=" in customer.http.get(authorize, follow_redirects=False).headers["location"]
        assert authorization_codes(quick_sweep) >= 5
        deadline = time.monotonic() + 10
        while authorization_codes(quick_sweep) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert authorization_codes(quick_sweep) == 0, "an expired code is gone once its access token could be"


def test_a_consumed_step_token_is_remembered_as_long_as_it_verifies(quick_sweep: Stack) -> None:
    """Verifiers accept a token until `exp` plus 5 s of leeway: forgetting its jti at `exp`
    would let a used step token through a second time."""
    with customer_pool(quick_sweep.gateway_url) as customers:
        customer = customers()
        page = customer.start_login()
        issued = time.time()
        used = customer.http.cookies.get("login_step", path="/")
        form = page.form("/auth/login/username")
        assert customer.enter_username(page, "someone").path == "/auth/login"
        # Past exp, within the leeway; auth's sweeps have run meanwhile.
        time.sleep(max(0.0, issued + STEP_TOKEN_TTL_SECONDS + 2 - time.time()))
        drop_cookie(customer, "login_step")
        customer.http.cookies.set("login_step", used, domain="127.0.0.1", path="/")
        replay = customer.http.post(
            "/auth/login/username", data={**form, "username": "someone"}, follow_redirects=False
        )
        assert replay.status_code == 400, (replay.status_code, replay.headers.get("location"))
