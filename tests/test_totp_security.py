"""TOTP against the known attacks, through nginx, with two mfa replicas behind it.

A code is good once, even when two browsers post it at the same moment to two replicas;
wrong codes lock the account in auth whichever replica counted them; a phone whose clock
is off is told so; and every outcome lands in mfa's audit trail without the code.
"""

import asyncio
import json
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from devstack import Stack, free_ports, gateway
from services.mfa.store import MfaStore

from .customer import Customer, Page
from .external_tools import totp_now
from .flows import PASSWORD, Account, add_user, customer_pool, sign_in_to_code_page

ROOT = Path(__file__).resolve().parent.parent
WRONG = "That code didn't work. Enter the code your app shows now."
USED = "That code has already been used. Wait for the next code in your app."


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own with two mfa replicas behind the gateway."""
    gateway_port, *service_ports = free_ports(5)
    suffix = secrets.token_hex(4)
    stack = Stack(
        root=ROOT,
        state_dir=tmp_path_factory.mktemp("replicas"),
        gateway_port=gateway_port,
        ports=dict(zip(("auth", "mfa", "session", "portal"), service_ports, strict=True)),
        database=f"sso_test_{suffix}",
        redis_prefix=f"ssotest-{suffix}:",
        replicas={"mfa": 2},
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop(drop_database=True)


@pytest.fixture
def customers(replicated: Stack) -> Iterator[Callable[[], Customer]]:
    with customer_pool(replicated.gateway_url) as make:
        yield make


@pytest.fixture
def enrolled(replicated: Stack, customers: Callable[[], Customer]) -> Account:
    account = add_user(replicated)
    customer = customers()
    page = sign_in_to_code_page(customer, account)
    account.secret = page.by_id("totp-secret")
    assert customer.enter_setup_code(page, totp_now(account.secret)).path == "/auth/login/complete"
    return account


def wrong_code(secret: str) -> str:
    """A code that is right for no step within ±10 of now (so not even a clock-skew hint)."""
    near = {totp_now(secret, offset) for offset in range(-11, 12)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in near)


def error_of(page: Page) -> str:
    error = page.soup.find(class_="error")
    assert error is not None, f"no error on {page.path}: {page.text[:300]}"
    return str(error.get_text(strip=True))


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def eventually(check: Callable[[], None], timeout: float = 3.0) -> None:
    """Log lines are written just after the response: give them a moment."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def mfa_audit(stack: Stack, username: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        pool = await asyncpg.create_pool(
            stack.database_url, min_size=1, max_size=1, server_settings={"search_path": "mfa"}
        )
        try:
            user_id = await pool.fetchval(
                "SELECT user_id FROM audit_event WHERE username = $1 LIMIT 1", username
            )
            assert user_id is not None, f"no audit rows for {username}"
            return await MfaStore(pool).audit_rows(user_id)
        finally:
            await pool.close()

    return asyncio.run(read())


# Two replicas, one code


def test_the_same_code_posted_at_once_to_two_replicas_signs_in_once(
    replicated: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    first, second = customers(), customers()
    assert first.ip != second.ip
    pages = [sign_in_to_code_page(first, enrolled), sign_in_to_code_page(second, enrolled)]
    # One call first, so auth already holds mfa's key: two concurrent first calls race in
    # services.common.tokens.RemoteKeys (the second gets "unknown kid" while the first fetches).
    pages[0] = first.enter_code(pages[0], wrong_code(enrolled.secret))
    assert pages[0].status == 401, pages[0].text[:300]
    code = totp_now(enrolled.secret, 1)
    start = threading.Barrier(2)
    results: list[Page | BaseException] = [RuntimeError("not run"), RuntimeError("not run")]

    def post(index: int, customer: Customer) -> None:
        start.wait(timeout=10)
        try:
            results[index] = customer.enter_code(pages[index], code)
        except BaseException as error:  # noqa: BLE001 - reported below
            results[index] = error

    threads = [threading.Thread(target=post, args=(n, c)) for n, c in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    answers = [result for result in results if isinstance(result, Page)]
    assert len(answers) == 2, results

    signed_in = [page for page in answers if page.path == "/auth/login/complete"]
    refused = [page for page in answers if page.status == 401]
    assert (len(signed_in), len(refused)) == (1, 1), [(page.status, page.path) for page in answers]
    assert error_of(refused[0]) == USED

    # Each POST went to a different replica (nginx's shared round robin), and each replica
    # answered one of them: one let the customer in, the other refused the same code.
    def went_to_both_replicas() -> None:
        verifies = [
            entry
            for entry in json_lines(replicated.gateway_access_log)
            if entry.get("uri") == "/mfa/verify" and entry.get("remote_addr") in (first.ip, second.ip)
        ]
        assert len(verifies) == 3, verifies  # the warm-up, then the two at once
        assert {entry["upstream_addr"] for entry in verifies[1:]} == {
            f"127.0.0.1:{port}" for port in replicated.replica_ports("mfa")
        }

    def each_replica_answered_one() -> None:
        statuses = []
        for name in replicated.replica_names("mfa"):
            served = [
                entry["status"]
                for entry in json_lines(replicated.log_path(name))
                if entry.get("logger") == "access" and entry.get("path") == "/mfa/verify"
            ]
            statuses.append(served[-1] if served else None)
        assert sorted(statuses, key=str) == [303, 401], statuses

    eventually(went_to_both_replicas)
    eventually(each_replica_answered_one)


def test_both_replicas_serve_through_the_gateway(
    replicated: Stack, customers: Callable[[], Customer]
) -> None:
    customer = customers()
    for _ in range(4):
        assert customer.get("/mfa/static/style.css").status == 200

    assert replicated.replica_names("mfa") == ["mfa", "mfa-2"]
    assert len(set(replicated.replica_ports("mfa"))) == 2

    def both_served() -> None:
        for name in replicated.replica_names("mfa"):
            log = json_lines(replicated.log_path(name))
            paths = [entry.get("path") for entry in log if entry.get("logger") == "access"]
            assert "/mfa/static/style.css" in paths, f"{name} served nothing"

    eventually(both_served)


# Wrong codes lock the account, whichever replica counted them


def test_wrong_codes_lock_the_account_and_then_even_the_right_code_is_refused_with_the_wait(
    replicated: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    customer = customers()
    page = sign_in_to_code_page(customer, enrolled)
    wrong = wrong_code(enrolled.secret)
    answers = []
    for _ in range(5):  # AUTH_LOCKOUT_OTP_FAILURES; the two replicas take them in turn
        answer = customer.enter_code(page, wrong)
        answers.append((answer.status, error_of(answer)))
    assert answers == [(401, WRONG)] * 5

    # Another browser, another address: the account is locked, not the browser or the address.
    other = customers()
    right = totp_now(enrolled.secret, 1)
    locked = other.enter_code(sign_in_to_code_page(other, enrolled), right)
    # After the password, the lock is told, with its wait (docs/security.md, "Locks").
    assert (locked.status, locked.path) == (429, "/mfa/verify")
    assert error_of(locked).startswith(
        "Too many attempts: sign-in to this account is paused. Try again in 1 minute"
    )
    assert "sso" not in other.cookie_names()

    # The right code was never checked, so it was not used up: after an unlock it signs in.
    result = replicated.ssoctl("user", "unlock", enrolled.name)
    assert result.returncode == 0, result.stderr
    assert other.enter_code(locked, right).path == "/auth/login/complete"


# A phone whose clock is off


def test_a_phone_clock_minutes_ahead_is_told_so_and_the_right_code_still_works(
    replicated: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    customer = customers()
    page = sign_in_to_code_page(customer, enrolled)
    # Four steps ahead (three, should a step begin meanwhile): two minutes either way.
    ahead = customer.enter_code(page, totp_now(enrolled.secret, 4))
    assert ahead.status == 401
    assert (
        error_of(ahead) == "Your phone's clock seems to be about 2 minutes ahead. Correct it and try again."
    )
    behind = customer.enter_code(ahead, totp_now(enrolled.secret, -7))
    assert "minutes behind" in error_of(behind)
    assert customer.enter_code(behind, totp_now(enrolled.secret, 1)).path == "/auth/login/complete"


def sleep_into_the_next_step(margin: float = 0.5) -> None:
    time.sleep(30 - time.time() % 30 + margin)


def test_a_code_that_earned_a_clock_skew_hint_never_signs_in_later(
    replicated: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    """Else one guess would cover every step within the hint's reach: a guess that matched a
    step ahead would be told so, and would sign in once that step came."""
    attacker = customers()
    page = sign_in_to_code_page(attacker, enrolled)
    if time.time() % 30 > 25:
        sleep_into_the_next_step()
    guess = totp_now(enrolled.secret, 2)
    hinted = attacker.enter_code(page, guess)
    assert (hinted.status, error_of(hinted)) == (
        401,
        "Your phone's clock seems to be about 1 minute ahead. Correct it and try again.",
    )
    sleep_into_the_next_step()  # the guessed step is now within the ±1 window
    later = attacker.enter_code(hinted, guess)
    assert (later.status, later.path, error_of(later)) == (401, "/mfa/verify", WRONG)
    # Only that step is refused: the code of the step we are at signs in.
    assert attacker.enter_code(later, totp_now(enrolled.secret)).path == "/auth/login/complete"


# Audit


def test_every_code_outcome_is_audited_without_the_code(
    replicated: Stack, customers: Callable[[], Customer], enrolled: Account
) -> None:
    customer = customers()
    page = sign_in_to_code_page(customer, enrolled)
    wrong = wrong_code(enrolled.secret)
    skewed = totp_now(enrolled.secret, 5)
    right = totp_now(enrolled.secret, 1)
    page = customer.enter_code(page, wrong)
    page = customer.enter_code(page, skewed)
    assert customer.enter_code(page, right).path == "/auth/login/complete"
    again = customers()
    replayed = again.enter_code(sign_in_to_code_page(again, enrolled), right)
    assert error_of(replayed) == USED
    result = replicated.ssoctl("mfa", "reset", enrolled.name)
    assert result.returncode == 0, result.stderr

    rows = mfa_audit(replicated, enrolled.name)
    assert [(row["event"], row["outcome"]) for row in rows] == [
        ("enrollment", "started"),
        ("enrollment", "confirmed"),
        ("recovery_codes_created", "enrollment"),
        ("sign_in.otp", "invalid"),
        ("sign_in.otp", "clock_skew"),
        ("sign_in.otp", "ok"),
        ("sign_in.otp", "replayed"),
        ("mfa.reset", "removed"),
    ]
    assert [row["at"] for row in rows] == sorted(row["at"] for row in rows)
    sign_ins = [row for row in rows if row["event"] == "sign_in.otp"]
    assert [row["ip"] for row in sign_ins] == [customer.ip] * 3 + [again.ip]
    assert all(row["user_agent"].startswith("python-httpx/") for row in sign_ins)
    text = json.dumps(rows, default=str)
    for needle in (enrolled.secret, wrong, skewed, right, PASSWORD):
        assert needle not in text


# The gateway template, as Kubernetes renders it


def test_the_gateway_template_takes_one_service_name_as_in_kubernetes(tmp_path: Path) -> None:
    values = {
        "GATEWAY_LISTEN": "8080",
        "GATEWAY_REAL_IP": "set_real_ip_from 10.0.0.0/8; real_ip_header X-Forwarded-For;",
        "AUTH_SERVERS": "server localhost:8101;",
        "MFA_SERVERS": "server localhost:8102;",
        "PORTAL_SERVERS": "server localhost:8104;",
        "GATEWAY_RUNTIME_DIR": str(tmp_path),
        "GATEWAY_PAGES_DIR": str(gateway.readable_pages(ROOT / "gateway" / "pages")),
        "GATEWAY_BRAND_NAME": "Orange Business",
    }
    config = gateway.write_config(ROOT / "gateway" / "nginx.conf.template", tmp_path, values)
    text = config.read_text()
    assert "server localhost:8102;" in text and "${" not in text
    checked = subprocess.run(
        [gateway.nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
