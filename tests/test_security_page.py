"""The Security page at /portal/security through nginx: real services, Postgres and Redis."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from devstack import Stack

from .customer import Customer, Page
from .external_tools import totp_now
from .flows import Account, add_user, first_login, sign_in_to_code_page


def sign_in_again(customer: Customer, account: Account, offset_steps: int = 1) -> Page:
    """A later sign-in, on another device: the code of a step after the one first_login used
    (mfa accepts each step once, and only steps after the last one used)."""
    page = sign_in_to_code_page(customer, account)
    page = customer.enter_code(page, totp_now(account.secret, offset_steps=offset_steps))
    assert page.status == 200, page.text[:300]
    page = customer.press_continue(page)
    assert (page.status, page.path) == (200, "/portal/"), page.text[:300]
    return page


def test_the_security_page_shows_since_when_2fa_is_on(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    customer = customers()
    portal = first_login(customer, account)
    assert portal.link("security-link") == "/portal/security"

    page = customer.get("/portal/security")

    assert (page.status, page.path) == (200, "/portal/security"), page.text[:300]
    assert page.by_id("mfa-state").startswith("On: your authenticator app has been set up since")
    since = page.soup.select_one("#mfa-state time")["datetime"]
    set_up = datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - set_up) < timedelta(minutes=5)
    assert page.form("/portal/logout-everywhere")["csrf_token"]


def test_the_security_page_needs_a_live_portal_session(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    stranger = customers()
    response = stranger.http.get("/portal/security", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/portal/login")

    account = add_user(stack)
    laptop, phone = customers(), customers()
    first_login(laptop, account)
    assert laptop.get("/portal/security").status == 200
    phone_portal = sign_in_again(phone, account)
    # Signed out everywhere from the phone: the laptop's page is refused at its next request.
    phone.submit(phone_portal, "/portal/logout-everywhere")

    response = laptop.http.get("/portal/security", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/portal/login")


NEW_PASSWORD = "quiet lantern orbit 42"


def change_password(customer: Customer, current: str, new: str, again: str | None = None) -> Page:
    page = customer.get("/portal/security")
    assert page.status == 200, page.text[:300]
    return customer.submit(
        page,
        "/portal/security/password",
        current_password=current,
        new_password=new,
        new_password_again=new if again is None else again,
    )


def password_step(customer: Customer, account: Account, password: str) -> Page:
    """A fresh browser's sign-in up to the password's answer: the code page, or the refusal."""
    return customer.enter_password(customer.enter_username(customer.start_login(), account.name), password)


def test_a_changed_password_signs_in_the_old_one_no_more_and_other_devices_are_signed_out(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    laptop, phone = customers(), customers()
    first_login(laptop, account)
    sign_in_again(phone, account)
    assert phone.get("/portal/security").status == 200

    done = change_password(laptop, account.password, NEW_PASSWORD)

    assert (done.status, done.path) == (200, "/portal/security"), done.text[:300]
    assert done.by_id("notice").startswith(
        "Your password has been changed. Your other devices have been signed out"
    )
    # This device stays signed in; the phone is signed out of the portal and of single sign-on.
    assert laptop.get("/portal/security").path == "/portal/security"
    response = phone.http.get("/portal/security", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/portal/login")
    assert phone.get("/portal/login").path == "/auth/authorize"
    old = password_step(customers(), account, account.password)
    assert (old.status, old.path) == (401, "/auth/login/password"), old.text[:300]
    new = password_step(customers(), account, NEW_PASSWORD)
    assert (new.status, new.path) == (200, "/mfa/"), new.text[:300]
    audit = stack.ssoctl("audit", account.name).stdout
    assert "password_changed" in audit and " ok" in audit
    for name in ("auth", "portal", "session"):
        log = stack.log_path(name).read_text()
        assert NEW_PASSWORD not in log and account.password not in log, name


def test_each_refusal_of_a_new_password_says_why_and_changes_nothing(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    customer = customers()
    first_login(customer, account)
    refusals = [
        (account.password, "short pass", None, 400, "A password needs at least 12 characters."),
        (account.password, "password1234", None, 400, "That password is too common or too easy to guess."),
        (account.password, NEW_PASSWORD, NEW_PASSWORD + "!", 400, "The two new passwords are not the same."),
        ("not my password", NEW_PASSWORD, None, 401, "That is not your current password."),
        (account.password, account.password, None, 400, "The new password is your current one."),
        (
            account.password,
            f"my {account.name} is long",
            None,
            400,
            "The new password must not contain your username.",
        ),
    ]
    for current, new, again, status, message in refusals:
        page = change_password(customer, current, new, again)
        assert (page.status, page.path) == (status, "/portal/security/password"), (new, page.text[:300])
        assert page.by_id("password-error").startswith(message), page.by_id("password-error")

    # Nothing changed: the first password still signs in.
    still = password_step(customers(), account, account.password)
    assert (still.status, still.path) == (200, "/mfa/"), still.text[:300]


def test_wrong_current_passwords_lock_like_the_sign_in(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account = add_user(stack)
    customer = customers()
    first_login(customer, account)
    # AUTH_LOCKOUT_PASSWORD_FAILURES: 10 wrong passwords lock the account's unknown browsers.
    for attempt in range(10):
        page = change_password(customer, f"wrong guess {attempt}", NEW_PASSWORD)
        assert page.status == 401, (attempt, page.text[:300])

    locked = change_password(customer, account.password, NEW_PASSWORD)
    assert locked.status == 429
    assert locked.by_id("password-error").startswith("Too many wrong passwords")
    # The sign-in of an unknown browser is locked too, even with the right password.
    refused = password_step(customers(), account, account.password)
    assert (refused.status, refused.path) == (401, "/auth/login/password")
    assert stack.ssoctl("user", "unlock", account.name).returncode == 0
    assert change_password(customer, account.password, NEW_PASSWORD).status == 200


CHROME_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)


def sessions_on(page: Page) -> list[tuple[str, str, bool, str | None]]:
    """(device, address, this device, the Sign out form's handle) of each session listed."""
    listed = []
    for item in page.soup.select("#sessions li"):
        handle = item.find("input", attrs={"name": "session"})
        listed.append(
            (
                item.select_one(".device").get_text(strip=True),
                item.select_one(".address").get_text(strip=True),
                item.select_one(".this-device") is not None,
                handle["value"] if handle else None,
            )
        )
    return listed


def test_sessions_show_each_device_and_one_other_can_be_signed_out_but_not_someone_elses(
    stack: Stack, customers: Callable[[], Customer]
) -> None:
    account, other = add_user(stack), add_user(stack)
    laptop, phone, stranger = customers(), customers(), customers()
    laptop.http.headers["user-agent"] = CHROME_WINDOWS
    phone.http.headers["user-agent"] = SAFARI_IPHONE
    first_login(laptop, account)
    sign_in_again(phone, account)
    first_login(stranger, other)

    page = laptop.get("/portal/security")
    listed = sessions_on(page)
    assert sorted(entry[:3] for entry in listed) == [
        ("Chrome on Windows", laptop.ip, True),
        ("Safari on iPhone", phone.ip, False),
    ]
    assert "sid" not in page.response.text.lower().replace("aside", "")
    (phone_handle,) = [entry[3] for entry in listed if entry[3]]

    # The stranger posts the laptop's handle for the phone: not one of theirs, nothing ends.
    stranger_page = stranger.get("/portal/security")
    csrf = stranger_page.form("/portal/security/password")["csrf_token"]
    forged = Page(
        stranger.http.post(
            "/portal/security/sessions/end", data={"csrf_token": csrf, "session": phone_handle}
        )
    )
    assert forged.status == 400 and forged.by_id("sessions-error") == "That session has already ended."
    assert phone.get("/portal/security").path == "/portal/security"

    done = laptop.submit(page, "/portal/security/sessions/end", session=phone_handle)
    assert done.by_id("notice") == "That device has been signed out."
    assert [entry[0] for entry in sessions_on(done)] == ["Chrome on Windows"]
    response = phone.http.get("/portal/security", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/portal/login")
    assert laptop.get("/portal/security").path == "/portal/security"
    assert stranger.get("/portal/security").path == "/portal/security"
    # No session id (the cookies) and no handle in any service's log or the gateway's.
    secrets_seen = [
        cookie.value for cookie in laptop.http.cookies.jar if cookie.name in ("portal_session", "sso")
    ]
    assert len(secrets_seen) == 2
    for log in [stack.log_path(name) for name in ("auth", "mfa", "session", "portal")] + [
        stack.gateway_access_log
    ]:
        text = log.read_text(errors="replace")
        assert phone_handle not in text, log
        assert not [value for value in secrets_seen if value in text], log
