"""The support desk at /support/ through nginx: support staff sign in with both factors, find a
customer, and reset their 2FA, unlock, disable and enable them, each audited with their name and
reason; customers get a 403 page; the support session ends after its idle time and its 8 hours."""

import secrets
import time
from collections.abc import Callable

from devstack import Stack

from .customer import Customer, Page
from .external_tools import totp_now
from .flows import PASSWORD, Account, add_user, first_login, sign_in_to_code_page

NOT_STAFF = "This page is for support staff only."


def add_support_user(stack: Stack) -> Account:
    name = f"staff{secrets.token_hex(4)}"
    result = stack.ssoctl("user", "add", name, "--password-stdin", "--role", "support", input=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    return Account(name)


def support_sign_in(customer: Customer, account: Account) -> Page:
    """/support/ asks for a fresh sign-in: username, password, then the set-up or the code page."""
    page = customer.get("/support/")
    assert page.path == "/auth/authorize", page.text[:300]
    page = customer.enter_password(customer.enter_username(page, account.name), account.password)
    assert page.path == "/mfa/", page.text[:300]
    if page.soup.find(id="totp-secret") is not None:
        account.secret = page.by_id("totp-secret").replace(" ", "")
        page = customer.enter_setup_code(page, totp_now(account.secret))
    else:
        page = customer.enter_code(page, totp_now(account.secret, offset_steps=1))
    page = customer.press_continue(page)
    assert (page.status, page.path) == (200, "/support/"), page.text[:300]
    return page


def open_customer(desk: Customer, name: str) -> Page:
    found = desk.get(f"/support/?q={name[:6]}")
    assert found.status == 200
    links = [a["href"] for a in found.soup.select("#results a")]
    assert f"/support/customer?name={name}" in links, links
    page = desk.get(f"/support/customer?name={name}")
    assert page.status == 200, page.text[:300]
    return page


def act(desk: Customer, page: Page, action: str, reason: str) -> Page:
    form = page.soup.find("input", attrs={"name": "action", "value": action}).find_parent("form")
    fields = {field["name"]: field.get("value", "") for field in form.find_all("input")}
    done = Page(
        desk.http.post("/support/customer/action", data={**fields, "reason": reason, "confirm": "yes"})
    )
    assert done.status == 200 and done.soup.find(id="notice") is not None, done.text[:500]
    return done


def text_of(page: Page, element_id: str) -> str:
    return page.soup.find(id=element_id).get_text(" ", strip=True)


def audit_line(stack: Stack, name: str, event: str) -> str:
    result = stack.ssoctl("audit", name)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.split()[1] == event]
    assert lines, result.stdout
    return lines[-1]


def test_support_resets_a_customers_2fa_and_their_next_sign_in_sets_up_again(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    owner = customers()
    first_login(owner, account)
    staff = add_support_user(stack)
    desk = customers()
    support_sign_in(desk, staff)

    page = open_customer(desk, account.name)
    assert text_of(page, "mfa-state").startswith("Set up since")
    assert text_of(page, "recovery-codes") == "10 of 10 left"
    assert text_of(page, "lock-state") == "Not locked"
    assert page.soup.select("#sessions tbody tr"), "the customer's SSO session is listed"
    assert len(page.soup.select("#audit tbody tr")) <= 50

    done = act(desk, page, "reset_mfa", "ticket 812: new phone")
    assert text_of(done, "mfa-state").startswith("Not set up")
    assert text_of(done, "recovery-codes") == "None: no authenticator is set up"
    assert text_of(done, "sessions") == "No active session."
    assert owner.get("/portal/").path == "/", "the customer's sessions ended"
    assert sign_in_to_code_page(customers(), account).soup.find(id="totp-secret") is not None

    line = audit_line(stack, account.name, "mfa.reset")
    assert f"operator={staff.name} " in line and 'reason="ticket 812: new phone"' in line
    assert desk.ip in line
    revoked = audit_line(stack, account.name, "session.revoked")
    assert f"operator={staff.name} " in revoked

    left = desk.submit(desk.get("/support/"), "/support/logout")
    assert left.path == "/"
    assert "support_session" not in desk.cookie_names()
    assert desk.get("/support/").path == "/auth/authorize", "leaving the desk ends the support session"


def test_support_unlocks_disables_and_enables_a_customer(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    attacker = customers()
    page = attacker.enter_username(attacker.start_login(), account.name)
    for attempt in range(10):
        page = attacker.enter_password(page, f"wrong {attempt}")
    owner = customers()
    locked = owner.enter_password(owner.enter_username(owner.start_login(), account.name), account.password)
    assert locked.status == 401

    staff = add_support_user(stack)
    desk = customers()
    support_sign_in(desk, staff)
    page = open_customer(desk, account.name)
    assert text_of(page, "lock-state").startswith("Locked until 20")
    page = act(desk, page, "unlock", "verified by phone")
    assert text_of(page, "lock-state") == "Not locked"
    signed_in = customers()
    assert first_login(signed_in, account).path == "/portal/"

    page = act(desk, page, "disable", "fraud suspected")
    assert text_of(page, "account-state") == "Disabled"
    assert signed_in.get("/portal/").path == "/"
    refused = owner.enter_password(owner.enter_username(owner.start_login(), account.name), account.password)
    assert (refused.status, refused.path) == (401, "/auth/login/password")

    page = act(desk, page, "enable", "cleared")
    assert text_of(page, "account-state") == "Enabled"
    assert sign_in_to_code_page(customers(), account).path == "/mfa/"
    for event, reason in (
        ("unlock", "verified by phone"),
        ("user.disabled", "fraud suspected"),
        ("user.enabled", "cleared"),
    ):
        line = audit_line(stack, account.name, event)
        assert f"operator={staff.name} " in line and f'reason="{reason}"' in line, line


def test_a_customer_gets_a_403_page_at_the_support_desk(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    customer = customers()
    first_login(customer, account)
    page = customer.get("/support/")
    assert (page.status, page.path) == (403, "/support/")
    assert NOT_STAFF in page.text and "Traceback" not in page.text

    # Signing in through the desk's own sign-in does not help either.
    other = customers()
    page = other.get("/support/")
    page = other.enter_password(other.enter_username(page, account.name), account.password)
    page = other.enter_code(page, totp_now(account.secret, offset_steps=1))
    page = other.press_continue(page)
    assert (page.status, page.path) == (403, "/support/callback")
    assert "support_session" not in other.cookie_names()


def test_an_action_needs_a_confirmation_a_reason_and_the_csrf_token(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    first_login(customers(), account)
    staff = add_support_user(stack)
    desk = customers()
    support_sign_in(desk, staff)
    page = open_customer(desk, account.name)
    form = page.soup.find("input", attrs={"name": "action", "value": "reset_mfa"}).find_parent("form")
    fields = {field["name"]: field.get("value", "") for field in form.find_all("input")}

    unconfirmed = desk.http.post("/support/customer/action", data={**fields, "reason": "x", "confirm": ""})
    no_reason = desk.http.post("/support/customer/action", data={**fields, "reason": " ", "confirm": "yes"})
    forged = desk.http.post(
        "/support/customer/action", data={**fields, "reason": "x", "confirm": "yes", "csrf_token": "forged"}
    )
    assert (unconfirmed.status_code, no_reason.status_code, forged.status_code) == (400, 400, 403)
    assert "Nothing was changed" in unconfirmed.text
    assert text_of(desk.get(f"/support/customer?name={account.name}"), "mfa-state").startswith("Set up since")

    # A support user who loses the role loses the desk with the next request.
    assert stack.ssoctl("user", "role", staff.name, "customer").returncode == 0
    assert desk.get("/support/").status == 403


def test_the_support_session_ends_when_idle_and_after_its_limit(
    make_stack: Callable[..., Stack],
) -> None:
    short = make_stack(PORTAL_SUPPORT_IDLE_SECONDS=3, PORTAL_SUPPORT_MAX_SECONDS=7)
    staff = add_support_user(short)
    desk = Customer(short.gateway_url)
    try:
        support_sign_in(desk, staff)
        time.sleep(4)
        assert desk.get("/support/").path == "/auth/authorize", "idle: a fresh sign-in is asked"

        desk = Customer(short.gateway_url)
        page = desk.get("/support/")
        page = desk.enter_password(desk.enter_username(page, staff.name), staff.password)
        page = desk.press_continue(desk.enter_code(page, totp_now(staff.secret, offset_steps=1)))
        assert page.path == "/support/"
        # The support session started before this moment: its limit is counted from there.
        started = time.monotonic()
        while time.monotonic() - started < 6:
            assert desk.get("/support/").path == "/support/", "busy: still signed in"
            time.sleep(1.0)
        time.sleep(max(0.0, 7.5 - (time.monotonic() - started)))
        assert desk.get("/support/").path == "/auth/authorize", "past its limit: a fresh sign-in is asked"
    finally:
        desk.close()
