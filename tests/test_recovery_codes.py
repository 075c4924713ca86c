"""Recovery codes through nginx: shown once after the first set-up, each signs in once, wrong
ones lock like wrong TOTP codes, a reset deletes them, and no log line ever holds one."""

import asyncio
import json
import re
import threading
from collections.abc import Callable
from typing import Any

import asyncpg

from devstack import Stack

from .customer import Customer, Page
from .external_tools import totp_now
from .flows import Account, add_user, first_login, sign_in_to_code_page, wrong_codes

WRONG_RECOVERY = "That recovery code didn't work. Check it and try again."
WRONG = "That code didn't work. Enter the code your app shows now."
LOCKED = "Too many attempts: sign-in to this account is paused."
EXPIRED = "Your sign-in has expired. Please start again from the customer portal."
CODE_PATTERN = r"^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$"


def error_of(page: Page) -> str:
    error = page.soup.find(class_="error")
    assert error is not None, f"no error on {page.path}: {page.text[:300]}"
    return str(error.get_text(strip=True))


def shown_user(stack: Stack, name: str) -> dict[str, Any]:
    result = stack.ssoctl("user", "show", name)
    assert result.returncode == 0, result.stderr
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def stored_codes(stack: Stack, name: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        connection = await asyncpg.connect(stack.database_url, server_settings={"search_path": "mfa"})
        try:
            user_id = shown_user(stack, name)["user_id"]
            rows = await connection.fetch(
                "SELECT code_hash, used_at FROM recovery_code WHERE user_id = $1", user_id
            )
            displays = await connection.fetch(
                "SELECT sealed_codes FROM recovery_code_display WHERE user_id = $1", user_id
            )
            return [dict(row) for row in rows] + [dict(row) for row in displays]
        finally:
            await connection.close()

    return asyncio.run(read())


def enrolled(stack: Stack, customers: Callable[[], Customer]) -> Account:
    account = add_user(stack)
    assert first_login(customers(), account).path == "/portal/"
    assert len(account.recovery_codes) == 10
    return account


def sign_in_with_recovery_code(customer: Customer, account: Account, code: str) -> Page:
    return customer.enter_recovery_code(sign_in_to_code_page(customer, account), code)


def test_the_first_set_up_shows_ten_codes_once_and_download_gives_the_same(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    customer = customers()
    page = sign_in_to_code_page(customer, account)
    account.secret = page.by_id("totp-secret").replace(" ", "")
    page = customer.enter_setup_code(page, totp_now(account.secret), save_codes=False)
    assert (page.status, page.path) == (200, "/mfa/recovery-codes"), page.text[:300]
    codes = page.recovery_codes()
    assert len(codes) == len(set(codes)) == 10
    assert all(re.match(CODE_PATTERN, code) for code in codes), codes

    # Stored as keyed hashes; the display only sealed.
    rows = stored_codes(stack, account.name)
    assert len([row for row in rows if "code_hash" in row]) == 10
    stored = b"".join(bytes(value) for row in rows for value in row.values() if isinstance(value, bytes))
    for code in codes:
        assert code.encode() not in stored and code.replace("-", "").encode() not in stored

    download = customer.submit(page, "/mfa/recovery-codes/download")
    assert download.status == 200
    assert download.response.headers["content-type"].startswith("text/plain")
    assert download.response.headers["content-disposition"].startswith("attachment;")
    assert download.response.text.splitlines() == codes

    # The page again (a reload before going on): the same codes. Unticked, the server refuses.
    again = customer.get("/mfa/recovery-codes")
    assert again.recovery_codes() == codes
    unticked = customer.submit(again, "/mfa/recovery-codes/saved")
    assert (unticked.status, unticked.recovery_codes()) == (400, codes)
    assert "Tick “I have saved these codes” to go on." in unticked.text
    assert "sso" not in customer.cookie_names()

    done = customer.submit(again, "/mfa/recovery-codes/saved", saved="yes")
    assert (done.status, done.path) == (200, "/auth/login/complete"), done.text[:300]
    # Reload, back, or the download once more: never the codes again.
    for after in (
        customer.get("/mfa/recovery-codes"),
        customer.submit(again, "/mfa/recovery-codes/download"),
        customer.submit(again, "/mfa/recovery-codes/saved", saved="yes"),
    ):
        # The step is used up (400, expired); the old page's forms also carry the CSRF token of
        # a browser id the sign-in replaced (403, the form expired).
        assert (after.status, after.path) in ((400, "/mfa/recovery-codes"),) or after.status == 403, (
            after.text
        )
        assert "expired" in after.text
        assert not any(code in after.response.text for code in codes)
    assert customer.press_continue(done).path == "/portal/"
    assert len([row for row in stored_codes(stack, account.name) if "sealed_codes" in row]) == 0


def test_a_recovery_code_signs_in_once_and_the_count_goes_down(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = enrolled(stack, customers)
    assert shown_user(stack, account.name)["mfa"]["recovery_codes_left"] == 10
    customer = customers()
    code_page = sign_in_to_code_page(customer, account)
    assert code_page.link("use-recovery-code") == "/mfa/recovery"
    form = customer.get("/mfa/recovery")
    field = form.soup.find("input", attrs={"name": "recovery_code"})
    assert field is not None and field["autocomplete"] == "one-time-code"
    assert form.soup.find("label", attrs={"for": "recovery_code"}).get_text(strip=True) == "Recovery code"
    # Typed as people do: lower case, spaces for dashes.
    page = customer.submit(
        form, "/mfa/recovery", recovery_code=account.recovery_codes[0].lower().replace("-", " ")
    )
    assert (page.status, page.path) == (200, "/auth/login/complete"), page.text[:300]
    assert (
        page.by_id("recovery-codes-left")
        == "You signed in with a recovery code. You have 9 recovery codes left."
    )
    assert customer.press_continue(page).path == "/portal/"
    # A recovery code is a one-time password too: the SSO session's amr says so, the audit which.
    sessions = json.loads(stack.ssoctl("session", "list", account.name).stdout)
    assert [session["amr"] for session in sessions] == [["pwd", "otp"]] * 2

    other = customers()
    refused = sign_in_with_recovery_code(other, account, account.recovery_codes[0])
    assert (refused.status, refused.path, error_of(refused)) == (401, "/mfa/recovery", WRONG_RECOVERY)
    assert "sso" not in other.cookie_names()
    assert shown_user(stack, account.name)["mfa"]["recovery_codes_left"] == 9

    # Down to two: the Continue page says to make new ones.
    for code in account.recovery_codes[1:7]:
        assert sign_in_with_recovery_code(customers(), account, code).path == "/auth/login/complete"
    last = sign_in_with_recovery_code(customers(), account, account.recovery_codes[7])
    said = last.soup.find(id="recovery-codes-left").get_text(" ", strip=True)
    assert said == (
        "You signed in with a recovery code. You have 2 recovery codes left. "
        "Make new ones on the Security page of the customer portal."
    )
    assert shown_user(stack, account.name)["mfa"]["recovery_codes_left"] == 2

    audit = stack.ssoctl("audit", account.name).stdout.splitlines()
    events = [line.split()[1:3] for line in audit if "recovery_code" in line]
    assert events[0] == ["recovery_codes_created", "enrollment"]
    assert events.count(["recovery_code_used", "ok"]) == 8
    assert events.count(["recovery_code_failed", "invalid"]) == 1


def test_wrong_recovery_codes_count_against_the_same_lockout_as_wrong_codes(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = enrolled(stack, customers)
    customer = customers()
    page = sign_in_to_code_page(customer, account)
    wrong_totp = "000000" if totp_now(account.secret, 1) != "000000" else "111111"
    for _ in range(3):
        page = customer.enter_code(page, wrong_totp)
        assert error_of(page) == WRONG
    for attempt in range(2):  # AUTH_LOCKOUT_OTP_FAILURES is 5: three codes and two recovery codes
        page = customer.enter_recovery_code(customer.get("/mfa/"), f"2222-3333-444{attempt + 5}")
        assert (page.status, error_of(page)) == (401, WRONG_RECOVERY)

    # Locked for every other browser, with the lock's message, for a recovery code as for a code.
    other = customers()
    locked = sign_in_with_recovery_code(other, account, account.recovery_codes[0])
    assert (locked.status, locked.path) == (429, "/mfa/recovery")
    assert error_of(locked).startswith(LOCKED)
    also_locked = other.enter_code(other.get("/mfa/"), totp_now(account.secret, 1))
    assert (also_locked.status, also_locked.path) == (429, "/mfa/verify")
    assert error_of(also_locked).startswith(LOCKED)
    assert shown_user(stack, account.name)["locked"] is True
    audit = stack.ssoctl("audit", account.name).stdout
    assert "recovery_code_failed locked" in audit

    # Refused unchecked while locked, so not spent: after an unlock it signs in.
    assert stack.ssoctl("user", "unlock", account.name).returncode == 0
    assert (
        other.enter_recovery_code(other.get("/mfa/"), account.recovery_codes[0]).path
        == "/auth/login/complete"
    )


def test_one_recovery_code_posted_twice_at_once_signs_in_once(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = enrolled(stack, customers)
    first, second = customers(), customers()
    forms = [
        first.get(sign_in_to_code_page(first, account).link("use-recovery-code")),
        second.get(sign_in_to_code_page(second, account).link("use-recovery-code")),
    ]
    start = threading.Barrier(2)
    results: list[Page | BaseException] = [RuntimeError("not run"), RuntimeError("not run")]

    def post(index: int, customer: Customer) -> None:
        start.wait(timeout=10)
        try:
            results[index] = customer.submit(
                forms[index], "/mfa/recovery", recovery_code=account.recovery_codes[5]
            )
        except BaseException as error:  # noqa: BLE001 - reported below
            results[index] = error

    threads = [threading.Thread(target=post, args=(n, c)) for n, c in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    answers = [result for result in results if isinstance(result, Page)]
    assert len(answers) == 2, results
    assert sorted((page.status, page.path) for page in answers) == [
        (200, "/auth/login/complete"),
        (401, "/mfa/recovery"),
    ]
    assert shown_user(stack, account.name)["mfa"]["recovery_codes_left"] == 9


def test_a_reset_deletes_the_codes_and_the_next_set_up_makes_new_ones(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = enrolled(stack, customers)
    old = account.recovery_codes
    assert stack.ssoctl("mfa", "reset", account.name).returncode == 0
    assert shown_user(stack, account.name)["mfa"]["recovery_codes_left"] == 0
    assert stored_codes(stack, account.name) == []

    customer = customers()
    setup = sign_in_to_code_page(customer, account)
    assert setup.soup.find(id="totp-secret") is not None
    # No authenticator, so no recovery form: back to the set-up.
    assert customer.get("/mfa/recovery").soup.find(id="totp-secret") is not None
    assert first_login(customers(), account).path == "/portal/"
    assert not set(old) & set(account.recovery_codes)
    refused = sign_in_with_recovery_code(customers(), account, old[0])
    assert (refused.status, error_of(refused)) == (401, WRONG_RECOVERY)


def test_no_log_line_holds_a_recovery_code(stack: Stack, customers: Callable[[], Customer]) -> None:
    account = enrolled(stack, customers)
    assert sign_in_with_recovery_code(customers(), account, account.recovery_codes[1]).status == 200
    sign_in_with_recovery_code(customers(), account, account.recovery_codes[1])  # refused: spent
    logs = "".join(path.read_text() for path in (stack.state / "logs").glob("*.log"))
    logs += stack.gateway_access_log.read_text()
    user_id = shown_user(stack, account.name)["user_id"]
    assert f"recovery code used for user_id={user_id}" in logs, "the logs were read"
    assert f"recovery code wrong for user_id={user_id}" in logs
    for code in account.recovery_codes:
        for form in (code, code.replace("-", ""), code.lower(), code.replace("-", "").lower()):
            assert form not in logs


# The Security page: how many are left, and new ones


def new_codes_page(customer: Customer, account: Account, code: str) -> Page:
    page = customer.get("/portal/security")
    assert (page.status, page.path) == (200, "/portal/security"), page.text[:300]
    return customer.submit(page, "/portal/security/recovery-codes", code=code)


def test_the_security_page_counts_the_codes_and_makes_new_ones_once(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    customer = customers()
    first_login(customer, account)
    old = account.recovery_codes
    assert sign_in_with_recovery_code(customers(), account, old[0]).status == 200
    page = customer.get("/portal/security")
    assert page.by_id("recovery-codes-left").startswith("You have 9 unused recovery codes")

    wrong = "000000" if totp_now(account.secret, 1) != "000000" else "111111"
    refused = new_codes_page(customer, account, wrong)
    assert (refused.status, refused.by_id("recovery-error")) == (401, WRONG)

    shown = new_codes_page(customer, account, totp_now(account.secret, 1))
    assert (shown.status, shown.path) == (200, "/portal/security/recovery-codes"), shown.text[:300]
    codes = shown.recovery_codes()
    assert len(set(codes)) == 10 and not set(codes) & set(old)
    assert all(re.match(CODE_PATTERN, code) for code in codes)
    # Every hidden field, as a browser sends the form: `codes` ten times.
    form = shown.soup.find("form", action="/portal/security/recovery-codes/download")
    fields: dict[str, list[str]] = {}
    for field in form.find_all("input", type="hidden"):
        fields.setdefault(field["name"], []).append(field["value"])
    download = Page(customer.http.post("/portal/security/recovery-codes/download", data=fields))
    assert download.response.headers["content-type"].startswith("text/plain")
    assert download.response.text.splitlines() == codes

    # A reload sends the same code again: refused as used, no codes shown.
    csrf = shown.form("/portal/security/recovery-codes/download")["csrf_token"]
    resent = {"csrf_token": csrf, "code": totp_now(account.secret, 1)}
    again = Page(customer.http.post("/portal/security/recovery-codes", data=resent))
    assert again.status == 401 and "already been used" in again.text
    assert not any(code in again.response.text for code in codes)
    assert customer.get("/portal/security").by_id("recovery-codes-left").startswith("You have 10 unused")

    # The old set is gone, the new one signs in.
    refused_old = sign_in_with_recovery_code(customers(), account, old[1])
    assert (refused_old.status, error_of(refused_old)) == (401, WRONG_RECOVERY)
    assert sign_in_with_recovery_code(customers(), account, codes[0]).status == 200
    audit = stack.ssoctl("audit", account.name).stdout
    assert "recovery_codes_created renewed" in audit
    logs = "".join(path.read_text() for path in (stack.state / "logs").glob("*.log"))
    assert not any(code in logs or code.replace("-", "") in logs for code in codes)


# A right recovery code, and a renewal's right code, clear the code failures as a sign-in's does.


def test_a_recovery_code_sign_in_clears_the_code_failures(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = enrolled(stack, customers)
    assert wrong_codes(customers, account, 4) == [401] * 4
    page = sign_in_with_recovery_code(customers(), account, account.recovery_codes[0])
    assert (page.status, page.path) == (200, "/auth/login/complete"), page.text[:300]
    assert wrong_codes(customers, account, 6) == [401] * 5 + [429]


def test_new_recovery_codes_on_the_security_page_clear_the_code_failures(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    customer = customers()
    first_login(customer, account)
    assert wrong_codes(customers, account, 4) == [401] * 4
    # No complete step follows a renewal: mfa tells auth at once (/internal/attempts/succeeded).
    shown = new_codes_page(customer, account, totp_now(account.secret, 1))
    assert (shown.status, shown.path) == (200, "/portal/security/recovery-codes"), shown.text[:300]
    assert wrong_codes(customers, account, 6) == [401] * 5 + [429]
