"""The customer guide, screen by screen, through nginx against real Postgres and Redis."""

import json
import re
import secrets
from collections.abc import Callable
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import redis
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.jose import JsonWebKey, jwt

from devstack.stack import Stack
from services.common.redis_client import key_prefix_for
from services.session.store import ref_of

from .customer import Customer
from .external_tools import decode_qr, totp_now
from .flows import Account, add_user, first_login, mfa_csrf_token, portal_refuses_soon, sign_in_to_code_page


@pytest.fixture
def account(stack: Stack) -> Account:
    return add_user(stack)


@pytest.fixture
def enrolled(stack: Stack, customers: Callable[[], Customer]) -> Account:
    account = add_user(stack)
    portal = first_login(customers(), account)
    assert portal.path == "/portal/"
    return account


def test_login_shows_the_username_page_in_authorizes_own_answer_and_a_refresh_begins_again(
    customers: Callable[[], Customer], account: Account
) -> None:
    customer = customers()  # a first visit: no browser id, no cookie at all
    page = customer.start_login()
    # One redirect (the portal's, to authorize), then the page: no 303 on to /auth/login.
    assert [(answer.status_code, answer.url.path) for answer in page.response.history] == [
        (302, "/portal/login")
    ]
    assert (page.status, page.path) == (200, "/auth/authorize")
    assert page.response.headers["cache-control"] == "no-store"
    assert {"browser", "login_step"} <= {cookie.name for cookie in page.response.cookies.jar}
    first_step = customer.http.cookies.get("login_step", path="/")
    # A refresh asks authorize again: a new username step, not the one of the first answer.
    again = customer.get(str(page.response.url))
    assert (again.status, again.path) == (200, "/auth/authorize")
    assert customer.http.cookies.get("login_step", path="/") != first_step
    # The first visit's form posts (its CSRF token and step are the browser id's just set).
    page = customer.enter_username(again, account.name)
    assert (page.status, page.path) == (200, "/auth/login") and "password" in page.text.lower()
    assert customer.enter_password(page, account.password).path == "/mfa/"


def test_first_login_sets_up_the_authenticator_from_the_qr_code(
    stack: Stack, customers: Callable[[], Customer], account: Account
) -> None:
    customer = customers()
    landing = customer.get("/")
    assert "Login" in landing.text

    page = customer.start_login()
    assert page.soup.find("input", attrs={"name": "username", "autocomplete": "username"}) is not None
    page = customer.enter_username(page, account.name)
    password_field = page.soup.find("input", attrs={"name": "password"})
    assert password_field is not None and password_field["autocomplete"] == "current-password"
    assert page.soup.find("label", attrs={"for": password_field["id"]}) is not None
    page = customer.enter_password(page, account.password)

    # The set-up page: a QR code, the same secret in text with a Copy button, and a code field.
    assert page.path == "/mfa/"
    uri = decode_qr(page.qr_png())
    secret = page.by_id("totp-secret").replace(" ", "")
    assert uri == (
        f"otpauth://totp/Orange%20Business:{account.name}?secret={secret}"
        "&issuer=Orange%20Business&algorithm=SHA1&digits=6&period=30"
    )
    assert len(secret) * 5 >= 160 and re.fullmatch(r"[A-Z2-7]+", secret)
    assert page.soup.find(id="copy-secret") is not None
    code_field = page.soup.find("input", attrs={"name": "code"})
    assert code_field["autocomplete"] == "one-time-code" and code_field["inputmode"] == "numeric"

    page = customer.enter_setup_code(page, totp_now(secret))
    assert page.status == 200
    assert page.path == "/auth/login/complete"
    assert "Continue" in page.text

    portal = customer.press_continue(page)
    assert portal.path == "/portal/"
    assert account.name in portal.text
    assert portal.soup.find("form", action="/portal/logout") is not None
    assert portal.soup.find("form", action="/portal/logout-everywhere") is not None


def test_a_wrong_code_at_set_up_keeps_the_same_qr_and_binds_nothing(
    stack: Stack, customers: Callable[[], Customer], account: Account
) -> None:
    customer = customers()
    page = sign_in_to_code_page(customer, account)
    secret = page.by_id("totp-secret")
    qr = decode_qr(page.qr_png())
    right = totp_now(secret)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    page = customer.enter_setup_code(page, wrong)
    assert page.status == 401
    assert "That code didn't work" in page.text
    assert page.by_id("totp-secret") == secret
    assert decode_qr(page.qr_png()) == qr

    # Nothing was bound: a new sign-in in the same browser still gets the set-up page, same secret.
    again = sign_in_to_code_page(customer, account)
    assert again.soup.find(id="totp-secret") is not None
    assert again.by_id("totp-secret") == secret


def test_a_set_up_secret_is_shown_only_to_the_browser_that_started_it(
    stack: Stack, customers: Callable[[], Customer], account: Account
) -> None:
    """Anyone else with the password gets a set-up of their own, which ends when the customer
    confirms theirs: a copy of the customer's secret would be a second key to the account."""
    customer, other = customers(), customers()
    page = sign_in_to_code_page(customer, account)
    elsewhere = sign_in_to_code_page(other, account)
    secret, other_secret = page.by_id("totp-secret"), elsewhere.by_id("totp-secret")
    assert other_secret != secret

    assert customer.enter_setup_code(page, totp_now(secret)).path == "/auth/login/complete"
    late = other.enter_setup_code(elsewhere, totp_now(other_secret))
    assert (late.status, late.path) == (403, "/mfa/setup"), "the other set-up ended"
    page = sign_in_to_code_page(other, account)
    assert page.soup.find(id="totp-secret") is None
    refused = other.enter_code(page, totp_now(other_secret, 1))
    assert (refused.status, refused.path) == (401, "/mfa/verify")
    assert other.enter_code(refused, totp_now(secret, 1)).path == "/auth/login/complete"


def test_later_logins_ask_for_the_code_without_a_qr(
    stack: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    customer = customers()
    page = sign_in_to_code_page(customer, enrolled)
    assert page.soup.find(id="totp-secret") is None
    assert page.soup.find("img") is None
    page = customer.enter_code(page, totp_now(enrolled.secret, offset_steps=1))
    assert page.status == 200, page.text[:300]
    portal = customer.press_continue(page)
    assert portal.path == "/portal/"
    assert enrolled.name in portal.text


def test_a_wrong_code_is_refused_at_later_logins(
    stack: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    customer = customers()
    page = sign_in_to_code_page(customer, enrolled)
    right = totp_now(enrolled.secret, offset_steps=1)
    page = customer.enter_code(page, f"{(int(right) + 500_000) % 1_000_000:06d}")
    assert page.status == 401
    assert "That code didn't work" in page.text
    assert customer.get("/portal/").path == "/"


def test_portal_logout_keeps_the_sso_session_so_login_needs_no_prompt(
    stack: Stack, customers: Callable[[], Customer], account: Account
) -> None:
    customer = customers()
    portal = first_login(customer, account)
    landing = customer.submit(portal, "/portal/logout")
    assert landing.path == "/"
    assert customer.get("/portal/").path == "/", "the portal session must be gone"

    again = customer.start_login()
    assert again.path == "/portal/"
    assert account.name in again.text


def test_sign_out_everywhere_ends_the_sso_session(
    stack: Stack, customers: Callable[[], Customer], account: Account
) -> None:
    customer = customers()
    portal = first_login(customer, account)
    after = customer.submit(portal, "/portal/logout-everywhere")
    assert after.status == 200
    assert after.path == "/"
    assert "You have been signed out on every device" in after.text
    assert "signed out on every device" not in customer.get("/").text, "the notice shows once"

    page = customer.start_login()
    assert page.path == "/auth/authorize"
    assert page.soup.find("input", attrs={"name": "username"}) is not None


def test_sign_out_everywhere_ends_the_sessions_of_every_device(
    stack: Stack, customers: Callable[[], Customer], account: Account
) -> None:
    laptop, phone, someone_else = customers(), customers(), customers()
    first_login(laptop, account)
    page = sign_in_to_code_page(phone, account)
    # The laptop used this step's code; the next step's is in the window and still unused.
    phone.press_continue(phone.enter_code(page, totp_now(account.secret, offset_steps=1)))
    other = add_user(stack)
    first_login(someone_else, other)
    assert phone.get("/portal/").path == "/portal/"

    laptop.submit(laptop.get("/portal/"), "/portal/logout-everywhere")

    # The phone's portal session and its SSO session are gone too: Login asks for the username.
    assert phone.get("/portal/").path == "/"
    page = phone.start_login()
    assert page.path == "/auth/authorize" and page.soup.find("input", attrs={"name": "username"}) is not None
    # Another customer keeps theirs.
    assert someone_else.get("/portal/").path == "/portal/"
    audit = stack.ssoctl("audit", account.name)
    assert audit.returncode == 0 and "everywhere" in audit.stdout


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
    stack: Stack, customers: Callable[[], Customer], account: Account
) -> None:
    answers = []
    for name, password in ((account.name, "wrong password"), (f"nobody{secrets.token_hex(3)}", "whatever")):
        customer = customers()
        page = customer.enter_username(customer.start_login(), name)
        assert page.soup.find("input", attrs={"name": "password"}) is not None
        page = customer.enter_password(page, password)
        answers.append((page.status, page.path, page.soup.find(class_="error").get_text(strip=True)))
    assert answers[0] == answers[1] == (401, "/auth/login/password", "Invalid username or password.")


def test_a_disabled_user_cannot_sign_in_and_loses_their_sessions(
    stack: Stack, customers: Callable[[], Customer], account: Account
) -> None:
    signed_in = customers()
    first_login(signed_in, account)
    result = stack.ssoctl("user", "disable", account.name)
    assert result.returncode == 0, result.stderr

    assert portal_refuses_soon(signed_in)
    page = signed_in.start_login()
    assert page.path == "/auth/authorize", "the SSO session must be gone too"

    customer = customers()
    page = customer.enter_username(customer.start_login(), account.name)
    page = customer.enter_password(page, account.password)
    assert page.status == 401
    assert "Invalid username or password." in page.text


def test_mfa_reset_brings_back_the_set_up_page(
    stack: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    customer = customers()
    assert sign_in_to_code_page(customer, enrolled).soup.find(id="totp-secret") is None
    result = stack.ssoctl("mfa", "reset", enrolled.name)
    assert result.returncode == 0, result.stderr

    page = sign_in_to_code_page(customers(), enrolled)
    new_secret = page.by_id("totp-secret")
    assert new_secret != enrolled.secret


def test_posting_a_code_without_the_password_step_fails(
    stack: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    customer = customers()
    csrf = mfa_csrf_token(stack, customer)
    customer.enter_username(customer.start_login(), enrolled.name)
    # Skip the password: post a right code straight to mfa with this browser's CSRF token.
    response = customer.http.post(
        "/mfa/verify", data={"csrf_token": csrf, "code": totp_now(enrolled.secret, 1)}
    )
    assert response.status_code == 400
    assert customer.get("/portal/").path == "/"


def test_the_sso_session_key_lives_exactly_twelve_hours_in_redis(
    stack: Stack, customers: Callable[[], Customer], account: Account
) -> None:
    customer = customers()
    first_login(customer, account)
    # This customer's own session: the shared stack holds older ones from other tests.
    (session_id,) = [cookie.value for cookie in customer.http.cookies.jar if cookie.name == "sso"]
    key = f"{key_prefix_for(stack.redis_prefix)}s:{ref_of(session_id)}"
    client = redis.Redis.from_url(stack.redis_url)
    try:
        ttl = client.ttl(key)
    finally:
        client.close()
    assert 43200 - 60 <= ttl <= 43200, ttl


# Without the setting a client gets RS256, what a standard client expects; with it, ES256.
@pytest.mark.parametrize(
    "alg_option", [(), ("--id-token-signed-response-alg", "ES256")], ids=["RS256", "ES256"]
)
def test_a_client_added_with_ssoctl_signs_in_with_a_standard_oidc_library(
    stack: Stack, customers: Callable[[], Customer], enrolled: Account, alg_option: tuple[str, ...]
) -> None:
    redirect_uri = "http://127.0.0.1:9/oidc/callback"
    result = stack.ssoctl(
        "client", "add", f"app{secrets.token_hex(3)}", "--redirect-uri", redirect_uri, *alg_option
    )
    assert result.returncode == 0, result.stderr
    registered = json.loads(result.stdout)
    customer = customers()
    discovery = customer.http.get("/auth/.well-known/openid-configuration").json()
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]

    client = OAuth2Client(
        registered["client_id"],
        registered["client_secret"],
        redirect_uri=redirect_uri,
        scope="openid profile",
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, state = client.create_authorization_url(
        discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    # The customer is not signed in: username, password, code, Continue; then back to the client.
    page = customer.get(url)
    page = customer.enter_password(customer.enter_username(page, enrolled.name), enrolled.password)
    page = customer.enter_code(page, totp_now(enrolled.secret, offset_steps=1))
    back = customer.get_until_outside(page.link("continue"), redirect_uri)
    callback = back.headers["location"]
    assert callback.startswith(redirect_uri + "?")
    query = parse_qs(urlsplit(callback).query)
    assert query["state"] == [state]

    with client:
        token = client.fetch_token(
            discovery["token_endpoint"], authorization_response=callback, code_verifier=verifier
        )
    keys = JsonWebKey.import_key_set(customer.http.get(discovery["jwks_uri"]).json())
    claims = jwt.decode(
        token["id_token"],
        keys,
        claims_options={
            "iss": {"essential": True, "value": discovery["issuer"]},
            "aud": {"essential": True, "value": registered["client_id"]},
            "nonce": {"essential": True, "value": nonce},
        },
    )
    claims.validate()
    assert claims.header["alg"] == (alg_option[-1] if alg_option else "RS256")
    assert claims["preferred_username"] == enrolled.name
    assert claims["amr"] == ["pwd", "otp"]

    userinfo = customer.http.get(
        discovery["userinfo_endpoint"], headers={"authorization": f"Bearer {token['access_token']}"}
    )
    assert userinfo.status_code == 200
    assert userinfo.json()["sub"] == claims["sub"]
    assert unquote(callback).count("code=") == 1


def test_no_password_secret_code_or_session_id_reaches_a_log(
    stack: Stack, customers: Callable[[], Customer], account: Account
) -> None:
    customer = customers()
    page = sign_in_to_code_page(customer, account)
    secret = page.by_id("totp-secret")
    code = totp_now(secret)
    page = customer.enter_setup_code(page, code)
    customer.press_continue(page)
    session_ids = [
        cookie.value for cookie in customer.http.cookies.jar if cookie.name in ("sso", "portal_session")
    ]
    assert len(session_ids) == 2

    logs = [stack.log_path(name) for name in ("auth", "mfa", "session", "portal")]
    text = "\n".join(path.read_text() for path in [*logs, stack.gateway_access_log])
    assert account.name in text or "user_id" in text, "the logs are being written"
    for needle in (account.password, secret, f'"{code}"', f"={code}", *session_ids):
        assert needle not in text
