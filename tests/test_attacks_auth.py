"""Attacks on the password step, the sessions and the OIDC provider, through nginx."""

import base64
import hashlib
import json
import secrets
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import httpx
import jwt
import pytest

from devstack.stack import Stack

from .customer import Customer, Page
from .external_tools import totp_now
from .flows import (
    PASSWORD,
    add_user,
    first_login,
    portal_refuses_soon,
    sign_in_to_code_page,
    wrong_codes,
)

INVALID = "Invalid username or password."


def password_page(customer: Customer, name: str) -> Page:
    return customer.enter_username(customer.start_login(), name)


def error_of(page: Page) -> str:
    error = page.soup.find(class_="error")
    return error.get_text(strip=True) if error else ""


# brute force


def test_ten_wrong_passwords_lock_the_account_until_unlock(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    attacker = customers()
    page = password_page(attacker, account.name.upper())  # names count case-insensitively
    for attempt in range(10):
        refused = attacker.enter_password(page, f"wrong {attempt}")
        assert (refused.status, error_of(refused)) == (401, INVALID)

    # Locked: the right password, even from another browser and address, gets the same answer.
    owner = customers()
    locked = owner.enter_password(password_page(owner, account.name), account.password)
    assert (locked.status, locked.path, error_of(locked)) == (401, "/auth/login/password", INVALID)

    result = stack.ssoctl("user", "unlock", account.name)
    assert result.returncode == 0, result.stderr
    unlocked = owner.enter_password(password_page(owner, account.name), account.password)
    assert unlocked.path == "/mfa/"


def test_parallel_wrong_passwords_all_count(stack: Stack, customers: Callable[[], Customer]) -> None:
    account = add_user(stack)
    attackers = [customers() for _ in range(15)]
    pages = [password_page(attacker, account.name) for attacker in attackers]
    with ThreadPoolExecutor(max_workers=15) as pool:
        answers = list(
            pool.map(
                lambda pair: pair[0].enter_password(pair[1], "wrong guess"),
                zip(attackers, pages, strict=True),
            )
        )
    assert all(answer.status == 401 for answer in answers)

    owner = customers()
    page = owner.enter_password(password_page(owner, account.name), account.password)
    assert (page.status, error_of(page)) == (401, INVALID), "15 parallel guesses must have locked the account"


def test_five_wrong_codes_lock_the_account_for_code_and_password(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    first_login(customers(), account)
    attacker = customers()
    page = sign_in_to_code_page(attacker, account)
    right = totp_now(account.secret, offset_steps=1)
    wrong = f"{(int(right) + 123_457) % 1_000_000:06d}"
    for _ in range(5):
        assert attacker.enter_code(page, wrong).status == 401
    refused = attacker.enter_code(page, right)
    assert refused.status == 429, "locked: even the right code is refused"
    assert "Too many attempts" in error_of(refused), "after the password, the lock is told"

    owner = customers()
    locked = owner.enter_password(password_page(owner, account.name), account.password)
    assert (locked.status, error_of(locked)) == (401, INVALID)


def test_a_right_code_clears_the_code_failures_only_once_continue_is_loaded(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    first_login(customers(), account)
    assert wrong_codes(customers, account, 4) == [401] * 4
    customer = customers()
    page = sign_in_to_code_page(customer, account)
    page = customer.enter_code(page, totp_now(account.secret, offset_steps=1))
    assert (page.status, page.path) == (200, "/auth/login/complete"), page.text[:300]
    # auth has consumed the complete step: the counts are back to zero, five more tries.
    assert wrong_codes(customers, account, 6) == [401] * 5 + [429]


def test_a_right_code_whose_continue_page_is_never_loaded_clears_nothing(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    first_login(customers(), account)
    assert wrong_codes(customers, account, 4) == [401] * 4
    customer = customers()
    page = sign_in_to_code_page(customer, account)
    code = totp_now(account.secret, offset_steps=1)
    right = customer.http.post(
        "/mfa/verify", data={**page.form("/mfa/verify"), "code": code}, follow_redirects=False
    )
    assert (right.status_code, right.headers["location"]) == (303, "/auth/login/complete")
    # The right code was the 5th attempt, and nothing cleared it: a 6th locks.
    assert wrong_codes(customers, account, 1) == [429]


def test_a_noisy_address_does_not_lock_out_the_customers_behind_it(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    attacker = customers()
    victims = [add_user(stack) for _ in range(11)]
    for victim in victims[:10]:
        page = password_page(attacker, victim.name)
        for _ in range(5):
            assert attacker.enter_password(page, "wrong guess").status == 401
            time.sleep(0.12)  # stay under the gateway's own per-address rate limit
    # 50 failures from this address, and more: its guesses are still refused...
    answer = attacker.enter_password(password_page(attacker, victims[10].name), "wrong guess")
    assert (answer.status, error_of(answer)) == (401, INVALID)
    # ...while a colleague behind the same address (a company's NAT), in a browser of their
    # own, signs in with the right password and code.
    customer = victims[10]
    first_login(customers(), customer)
    colleague = Customer(stack.gateway_url, ip=attacker.ip)
    try:
        page = sign_in_to_code_page(colleague, customer)
        page = colleague.enter_code(page, totp_now(customer.secret, offset_steps=1))
        assert colleague.press_continue(page).path == "/portal/"
    finally:
        colleague.close()


def test_a_known_browser_signs_in_while_an_attacker_has_locked_out_unknown_browsers(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    owner = customers()
    portal = first_login(owner, account)  # this browser is now known to the account
    assert owner.submit(portal, "/portal/logout-everywhere").path == "/"

    attacker = customers()
    page = password_page(attacker, account.name)
    for attempt in range(11):
        assert attacker.enter_password(page, f"wrong {attempt}").status == 401
    locked = attacker.enter_password(password_page(attacker, account.name), account.password)
    assert (locked.status, error_of(locked)) == (401, INVALID), "unknown browsers are locked out"
    stranger = customers()
    refused = stranger.enter_password(password_page(stranger, account.name), account.password)
    assert (refused.status, error_of(refused)) == (401, INVALID), "every unknown browser"

    page = sign_in_to_code_page(owner, account)
    page = owner.enter_code(page, totp_now(account.secret, offset_steps=1))
    assert owner.press_continue(page).path == "/portal/", "the customer's own browser still signs in"
    still_locked = attacker.enter_password(password_page(attacker, account.name), account.password)
    assert (still_locked.status, error_of(still_locked)) == (401, INVALID)


def test_a_device_cookie_is_worth_nothing_for_another_account(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    mine, victim = add_user(stack), add_user(stack)
    attacker = customers()
    first_login(attacker, mine)
    device = attacker.http.cookies.get("device", path="/auth/login")
    assert device, "a completed sign-in makes the browser known"
    stranger = customers()
    page = password_page(stranger, victim.name)
    for attempt in range(11):
        stranger.enter_password(page, f"wrong {attempt}")
    # The attacker's own device cookie does not make its browser known to the victim's account.
    thief = customers()
    thief.http.cookies.set("device", device, domain="127.0.0.1", path="/auth/login")
    page = thief.enter_password(password_page(thief, victim.name), victim.password)
    assert (page.status, error_of(page)) == (401, INVALID)


def test_the_gateway_rate_limits_posts_per_address(stack: Stack, customers: Callable[[], Customer]) -> None:
    customer = customers()
    page = password_page(customer, "nobody-at-all")
    form = page.form("/auth/login/password")
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(
            pool.map(
                lambda _: (
                    customer.http.post("/auth/login/password", data={**form, "password": "x"}).status_code
                ),
                range(60),
            )
        )
    assert 429 in statuses
    assert set(statuses) <= {401, 429}


# enumeration


def test_unknown_users_take_as_long_as_known_ones(stack: Stack, customers: Callable[[], Customer]) -> None:
    known = [add_user(stack) for _ in range(10)]
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    for round_number in range(20):
        for kind in ("known", "unknown"):
            name = known[round_number % 10].name if kind == "known" else f"ghost{secrets.token_hex(4)}"
            customer = customers()
            page = password_page(customer, name)
            started = time.perf_counter()
            answer = customer.enter_password(page, "wrong password")
            timings[kind].append(time.perf_counter() - started)
            assert (answer.status, error_of(answer)) == (401, INVALID)
    known_median = statistics.median(timings["known"])
    unknown_median = statistics.median(timings["unknown"])
    print(
        f"wrong-password median: known {known_median * 1000:.1f} ms, unknown {unknown_median * 1000:.1f} ms"
    )
    assert abs(unknown_median - known_median) <= 0.15 * known_median, (known_median, unknown_median)


# sessions


def test_sign_in_issues_a_new_sso_id(stack: Stack, customers: Callable[[], Customer]) -> None:
    account = add_user(stack)
    customer = customers()
    planted = secrets.token_urlsafe(32)
    customer.http.cookies.set("sso", planted, domain="127.0.0.1", path="/auth")
    first_login(customer, account)
    issued = [cookie.value for cookie in customer.http.cookies.jar if cookie.name == "sso"]
    assert issued and planted not in issued


@pytest.mark.parametrize("command", [("session", "revoke"), ("mfa", "reset"), ("user", "disable")])
def test_admin_actions_end_every_session_at_once(
    stack: Stack, customers: Callable[[], Customer], command: tuple[str, str]
) -> None:
    account = add_user(stack)
    browsers = [customers(), customers()]
    for number, browser in enumerate(browsers):
        if number == 0:
            first_login(browser, account)
        else:
            page = sign_in_to_code_page(browser, account)
            page = browser.enter_code(page, totp_now(account.secret, offset_steps=1))
            browser.press_continue(page)
        assert browser.get("/portal/").path == "/portal/"

    assert stack.ssoctl(*command, account.name).returncode == 0
    for browser in browsers:
        assert portal_refuses_soon(browser), "the portal session ended within the portal's bound"
        assert browser.start_login().path == "/auth/authorize", "the SSO session ended too"


# OIDC


def leave_portal(customer: Customer) -> None:
    """Logs out of the portal only, so that Login shows whether the SSO session lives."""
    assert customer.submit(customer.get("/portal/"), "/portal/logout").path == "/"


@pytest.fixture
def oidc_client(stack: Stack) -> dict[str, str]:
    redirect_uri = "http://127.0.0.1:9/cb"
    result = stack.ssoctl(
        "client",
        "add",
        f"app{secrets.token_hex(3)}",
        "--redirect-uri",
        redirect_uri,
        "--post-logout-redirect-uri",
        "http://127.0.0.1:9/bye",
    )
    assert result.returncode == 0, result.stderr
    return {**json.loads(result.stdout), "redirect_uri": redirect_uri}


def authorize_url(client: dict[str, str], **overrides: str) -> str:
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": client["redirect_uri"],
        "scope": "openid",
        "state": "st",
        "nonce": "no",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return "/auth/authorize?" + urlencode(params)


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:9/cb?x=1",
        "http://127.0.0.1:9/cb/more",
        "http://127.0.0.1:9/x/../cb",
        "http://evil.example/cb",
        "http://127.0.0.1:9/CB",
    ],
)
def test_a_redirect_uri_variant_is_refused_without_redirect(
    stack: Stack, customers: Callable[[], Customer], oidc_client: dict[str, str], redirect_uri: str
) -> None:
    response = customers().http.get(
        authorize_url(oidc_client, redirect_uri=redirect_uri), follow_redirects=False
    )
    assert response.status_code == 400
    assert "location" not in response.headers


@pytest.mark.parametrize(
    "overrides", [{"code_challenge_method": "plain"}, {"code_challenge": "", "code_challenge_method": ""}]
)
def test_pkce_s256_is_required(
    stack: Stack, customers: Callable[[], Customer], oidc_client: dict[str, str], overrides: dict[str, str]
) -> None:
    response = customers().http.get(authorize_url(oidc_client, **overrides), follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"].startswith(oidc_client["redirect_uri"] + "?error=invalid_request")


def signed_in_code(stack: Stack, customer: Customer, client: dict[str, str]) -> str:
    account = add_user(stack)
    first_login(customer, account)
    response = customer.get_until_outside(authorize_url(client), client["redirect_uri"])
    location = response.headers["location"]
    assert location.startswith(client["redirect_uri"] + "?code=")
    return httpx.URL(location).params["code"]


def exchange(stack: Stack, client: dict[str, str], code: str, verifier: str = "v" * 64) -> httpx.Response:
    return httpx.post(
        f"{stack.gateway_url}/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client["redirect_uri"],
            "code_verifier": verifier,
        },
        auth=(client["client_id"], client["client_secret"]),
    )


def test_a_reused_code_gets_invalid_grant_and_revokes_the_first_tokens(
    stack: Stack, customers: Callable[[], Customer], oidc_client: dict[str, str]
) -> None:
    customer = customers()
    code = signed_in_code(stack, customer, oidc_client)
    first = exchange(stack, oidc_client, code)
    assert first.status_code == 200
    access_token = first.json()["access_token"]
    userinfo = f"{stack.gateway_url}/auth/userinfo"
    assert httpx.get(userinfo, headers={"authorization": f"Bearer {access_token}"}).status_code == 200

    second = exchange(stack, oidc_client, code)
    assert (second.status_code, second.json()["error"]) == (400, "invalid_grant")
    assert httpx.get(userinfo, headers={"authorization": f"Bearer {access_token}"}).status_code == 401
    # A stolen code deserves more: the SSO session it came from is over, and its portal session.
    assert portal_refuses_soon(customer)
    assert customer.start_login().path == "/auth/authorize"


def test_a_leaked_code_without_the_verifier_burns_nothing(
    stack: Stack, customers: Callable[[], Customer], oidc_client: dict[str, str]
) -> None:
    customer = customers()
    code = signed_in_code(stack, customer, oidc_client)
    stolen = exchange(stack, oidc_client, code, verifier="w" * 64)
    assert (stolen.status_code, stolen.json()["error"]) == (400, "invalid_grant")
    assert exchange(stack, oidc_client, code).status_code == 200, "the client's own exchange still works"
    leave_portal(customer)
    assert customer.start_login().path == "/portal/", "and its session lives on"


def test_max_age_asks_for_a_fresh_sign_in(
    stack: Stack, customers: Callable[[], Customer], oidc_client: dict[str, str]
) -> None:
    customer = customers()
    signed_in_code(stack, customer, oidc_client)
    time.sleep(1.1)  # the sign-in is now more than 0 s old
    quiet = customer.http.get(authorize_url(oidc_client, prompt="none", max_age="0"), follow_redirects=False)
    assert quiet.status_code == 302
    assert httpx.URL(quiet.headers["location"]).params["error"] == "login_required"
    asked = customer.get_until_outside(authorize_url(oidc_client, max_age="0"), oidc_client["redirect_uri"])
    assert asked.url.path == "/auth/authorize", "signed in, but not recently enough: sign in again"

    recent = customer.get_until_outside(
        authorize_url(oidc_client, prompt="none", max_age="3600"), oidc_client["redirect_uri"]
    )
    code = httpx.URL(recent.headers["location"]).params["code"]
    id_token = exchange(stack, oidc_client, code).json()["id_token"]
    claims = jwt.decode(id_token, options={"verify_signature": False})
    assert 0 < time.time() - claims["auth_time"] <= 3600


def test_a_wrong_client_secret_is_refused(
    stack: Stack, customers: Callable[[], Customer], oidc_client: dict[str, str]
) -> None:
    code = signed_in_code(stack, customers(), oidc_client)
    response = exchange(stack, {**oidc_client, "client_secret": "not-the-secret"}, code)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


def test_logout_redirects_only_to_an_allow_listed_uri(
    stack: Stack, customers: Callable[[], Customer], oidc_client: dict[str, str]
) -> None:
    customer = customers()
    code = signed_in_code(stack, customer, oidc_client)
    id_token = exchange(stack, oidc_client, code).json()["id_token"]
    leave_portal(customer)
    for target in ("http://evil.example/", "http://127.0.0.1:9/bye/../evil", "http://127.0.0.1:9/bye?x"):
        query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": target})
        response = customer.http.get(f"/auth/logout?{query}", follow_redirects=False)
        assert response.status_code == 400 and "location" not in response.headers
    assert customer.start_login().path == "/portal/", "a refused logout ends nothing"

    query = urlencode(
        {"id_token_hint": id_token, "post_logout_redirect_uri": "http://127.0.0.1:9/bye", "state": "z"}
    )
    response = customer.http.get(f"/auth/logout?{query}", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "http://127.0.0.1:9/bye?state=z")
    assert customer.start_login().path == "/auth/authorize"


def test_a_logout_link_with_another_sessions_id_token_signs_no_one_out(
    stack: Stack, customers: Callable[[], Customer], oidc_client: dict[str, str]
) -> None:
    attacker = customers()
    id_token = exchange(stack, oidc_client, signed_in_code(stack, attacker, oidc_client)).json()["id_token"]
    victim = customers()
    first_login(victim, add_user(stack))
    leave_portal(victim)

    query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": "http://127.0.0.1:9/bye"})
    response = victim.http.get(f"/auth/logout?{query}", follow_redirects=False)
    assert response.status_code == 200, "a question, not a redirect"
    assert 'action="/auth/logout"' in response.text
    assert victim.start_login().path == "/portal/", "the victim is still signed in"


def test_logout_without_an_id_token_asks_before_signing_out(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    customer = customers()
    first_login(customer, add_user(stack))
    leave_portal(customer)
    page = customer.get("/auth/logout")
    assert page.status == 200 and page.soup.find("form", action="/auth/logout") is not None
    assert customer.start_login().path == "/portal/", "a link alone signs no one out"
    customer.submit(customer.get("/auth/logout"), "/auth/logout")
    assert customer.start_login().path == "/auth/authorize"


# audit


def test_the_audit_trail_records_each_step_without_secrets(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    customer = customers()
    customer.enter_password(password_page(customer, account.name), "wrong password")
    browser = customers()
    portal = first_login(browser, account)
    assert browser.submit(portal, "/portal/logout").path == "/"
    assert stack.ssoctl("user", "unlock", account.name).returncode == 0

    result = stack.ssoctl("audit", account.name)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    events = [(line.split()[1], line.split()[2]) for line in lines if len(line.split()) > 2]
    for expected in [
        ("sign_in.username", "submitted"),
        ("sign_in.password", "invalid"),
        ("sign_in.password", "ok"),
        ("enrollment", "started"),
        ("enrollment", "confirmed"),
        ("sign_in.complete", "ok"),
        ("logout", "portal"),
        ("unlock", "ok"),
    ]:
        assert expected in events, (expected, lines)
    assert customer.ip in result.stdout
    for secret in (account.password, "wrong password", account.secret):
        assert secret not in result.stdout
    assert PASSWORD not in result.stdout


def test_a_new_sign_in_ends_the_browsers_old_portal_session(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    customer = customers()
    first_login(customer, add_user(stack))
    old = customer.http.cookies.get("portal_session", path="/")
    assert old

    # Signing in again in the same browser (the SSO session lets it straight through).
    assert customer.get("/portal/login").path == "/portal/"
    new = customer.http.cookies.get("portal_session", path="/")
    assert new and new != old

    thief = customers()
    thief.http.cookies.set("portal_session", old, domain="127.0.0.1", path="/")
    assert thief.get("/portal/").path == "/", "the old portal session is dead"


def test_a_step_token_from_a_cookie_is_not_a_service_token(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    first_login(customers(), account)
    customer = customers()
    page = sign_in_to_code_page(customer, account)
    answer = customer.http.post(
        "/mfa/verify",
        data={**page.form("/mfa/verify"), "code": totp_now(account.secret, offset_steps=1)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    step_token = answer.cookies["login_step"]  # signed by mfa, aud auth: what a customer holds

    internal = f"{stack.service_url('auth')}/internal/attempts/succeeded"
    body = {"kind": "otp", "account": account.name, "ip": "127.0.0.1"}
    refused = httpx.post(internal, json=body, headers={"authorization": f"Bearer {step_token}"})
    assert refused.status_code == 401
