"""The messages a customer can meet, through nginx, in English and French: an expired sign-in or
set-up (with its Start again button), a locked account, and the gateway's own pages."""

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from playwright.sync_api import Browser, Page

from devstack.datastores import run_async
from devstack.stack import Stack

from .accessibility import assert_accessible
from .browsers import keep_screenshot
from .customer import Customer
from .customer import Page as Answer
from .external_tools import totp_now
from .flows import Account, add_user, wrong_code_for

FRENCH = "fr-FR,fr;q=0.9,en;q=0.5"
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}, "locale": "en-GB"}
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
LANGUAGES = {"en": "en-GB,en;q=0.9", "fr": FRENCH}
WORDS = {
    "en": {
        "expired": "This sign-in has expired",
        "set_up_expired": "Your set-up has expired: the QR code you scanned no longer works.",
        "step_expired": "Your sign-in has expired. Please start again from the customer portal.",
        "start_again": "Start again",
        "saved": "I have saved these codes",
        "username": "Username",
        "log_in": "Log in",
        "password": "Password",
        "continue": "Continue",
        "code": "6-digit code from your app",
        "welcome": "Welcome,",
    },
    "fr": {
        "expired": "Cette connexion a expiré",
        "set_up_expired": "Votre configuration a expiré : le QR code que vous avez scanné ne fonctionne plus.",
        "step_expired": "Votre connexion a expiré. Recommencez depuis le portail client.",
        "start_again": "Recommencer",
        "saved": "J'ai enregistré ces codes",
        "username": "Nom d'utilisateur",
        "log_in": "Se connecter",
        "password": "Mot de passe",
        "continue": "Continuer",
        "code": "Code à 6 chiffres de votre application",
        "welcome": "Bienvenue,",
    },
}


def expire_set_ups(stack: Stack, username: str) -> None:
    """The set-up's TTL (MFA_ENROLLMENT_TTL_SECONDS) passes at once: its expiry moves to the past,
    as ten minutes of waiting would leave it."""

    async def expire() -> None:
        connection = await asyncpg.connect(stack.database_url)
        try:
            user_id = await connection.fetchval("SELECT id FROM auth.users WHERE username = $1", username)
            updated = await connection.execute(
                "UPDATE mfa.pending_enrollment SET expires_at = now() - interval '1 second' "
                "WHERE user_id = $1",
                str(user_id),
            )
            assert updated != "UPDATE 0", f"no set-up in progress for {username}"
        finally:
            await connection.close()

    run_async(expire())


def _customer(stack: Stack, language: str) -> Customer:
    customer = Customer(stack.gateway_url)
    customer.http.headers["accept-language"] = LANGUAGES[language]
    return customer


@pytest.fixture
def customers(stack: Stack) -> Iterator[Callable[[str], Customer]]:
    made: list[Customer] = []

    def make(language: str) -> Customer:
        made.append(_customer(stack, language))
        return made[-1]

    yield make
    for customer in made:
        customer.close()


def to_code_page(customer: Customer, account: Account) -> Answer:
    """Login on the portal (in any language), username, password: the set-up or code page."""
    page = customer.enter_username(customer.get("/portal/login"), account.name)
    page = customer.enter_password(page, account.password)
    assert (page.status, page.path) == (200, "/mfa/"), page.text[:300]
    return page


def first_login(customer: Customer, account: Account) -> Answer:
    """The first sign-in with its set-up, in any language: the portal page."""
    page = to_code_page(customer, account)
    account.secret = page.by_id("totp-secret").replace(" ", "")
    return customer.press_continue(customer.enter_setup_code(page, totp_now(account.secret)))


def assert_start_again_page(page: Answer, language: str, message: str) -> None:
    words = WORDS[language]
    assert page.status == 400, (page.status, page.text[:300])
    html = page.soup.find("html")
    assert html is not None and html.get("lang") == language
    heading = page.soup.find("h1")
    assert heading is not None and heading.get_text(strip=True) == words["expired"]
    assert words[message] in page.text
    button = page.soup.find("a", id="start-again")
    assert button is not None and button.get_text(strip=True) == words["start_again"]
    assert button["href"] == "/portal/login"
    # In the product's layout: its stylesheet and brand header.
    assert page.soup.find("link", rel="stylesheet") is not None
    assert page.soup.find("header", class_="brand") is not None


@pytest.mark.parametrize("language", ["en", "fr"])
def test_an_expired_set_up_says_so_and_start_again_ends_at_the_portal(
    stack: Stack, customers: Callable[[str], Customer], language: str
) -> None:
    customer = customers(language)
    account = add_user(stack)
    page = to_code_page(customer, account)
    secret = page.by_id("totp-secret").replace(" ", "")
    expire_set_ups(stack, account.name)

    expired = customer.enter_setup_code(page, totp_now(secret))
    assert_start_again_page(expired, language, "set_up_expired")

    # Start again: the portal's Login, a fresh sign-in, a new QR, and the portal at the end.
    page = customer.get(str(expired.soup.find("a", id="start-again")["href"]))
    assert page.path == "/auth/authorize"
    page = customer.enter_password(customer.enter_username(page, account.name), account.password)
    new_secret = page.by_id("totp-secret").replace(" ", "")
    assert new_secret != secret, "an expired set-up's QR is never shown again"
    page = customer.enter_setup_code(page, totp_now(new_secret))
    portal = customer.press_continue(page)
    assert portal.path == "/portal/" and f"{WORDS[language]['welcome']} {account.name}" in portal.text


@pytest.mark.parametrize("language", ["en", "fr"])
def test_a_spent_step_token_on_the_password_and_code_pages_offers_start_again(
    stack: Stack, customers: Callable[[str], Customer], language: str
) -> None:
    account = add_user(stack)
    customer = customers(language)
    password_page = customer.enter_username(customer.get("/portal/login"), account.name)
    code_page = customer.enter_password(password_page, account.password)
    assert code_page.path == "/mfa/"
    # The password form again (Back in the browser): its step token is spent.
    again = customer.enter_password(password_page, account.password)
    assert_start_again_page(again, language, "step_expired")
    # The code page again after its right code (Back, or a reload): spent as well.
    secret = code_page.by_id("totp-secret").replace(" ", "")
    done = customer.enter_setup_code(code_page, totp_now(secret))
    assert done.path == "/auth/login/complete"
    assert_start_again_page(customer.get("/mfa/"), language, "step_expired")
    # And a browser with no sign-in under way at all.
    assert_start_again_page(customers(language).get("/auth/login"), language, "step_expired")


def _open(browser: Browser, device: dict[str, Any], language: str) -> tuple[Any, Page]:
    context = browser.new_context(**{**device, "locale": "fr-FR" if language == "fr" else "en-GB"})
    return context, context.new_page()


def _sign_in_to_set_up(stack: Stack, page: Page, account: Account, words: dict[str, str]) -> str:
    page.get_by_label(words["username"]).fill(account.name)
    page.get_by_role("button", name=words["log_in"]).click()
    page.get_by_label(words["password"]).fill(account.password)
    page.get_by_role("button", name=words["continue"]).click()
    page.locator("img.qr").wait_for()
    return page.locator("#totp-secret").inner_text().strip().replace(" ", "")


@pytest.mark.browser
@pytest.mark.parametrize(
    ("device", "language"),
    [(DESKTOP, "en"), (PHONE, "fr"), (DESKTOP, "fr"), (PHONE, "en")],
    ids=["desktop-en", "phone-fr", "desktop-fr", "phone-en"],
)
def test_in_chromium_the_expired_set_up_button_starts_again_and_ends_at_the_portal(
    stack: Stack, browser: Browser, device: dict[str, Any], language: str
) -> None:
    words = WORDS[language]
    label = f"{'phone' if device is PHONE else 'desktop'}-{language}"
    account = add_user(stack)
    context, page = _open(browser, device, language)
    try:
        page.goto(stack.gateway_url + "/portal/login")
        secret = _sign_in_to_set_up(stack, page, account, words)
        expire_set_ups(stack, account.name)
        page.get_by_label(words["code"]).fill(totp_now(secret))
        page.get_by_role("button", name=words["continue"]).click()

        assert page.locator("h1").inner_text() == words["expired"]
        assert words["set_up_expired"] in page.get_by_role("alert").inner_text()
        assert page.locator("html").get_attribute("lang") == language
        keep_screenshot(page, f"{label}-set-up-expired")
        assert_accessible(page)

        page.get_by_role("link", name=words["start_again"]).click()
        secret = _sign_in_to_set_up(stack, page, account, words)
        page.get_by_label(words["code"]).fill(totp_now(secret))
        page.get_by_role("button", name=words["continue"]).click()
        page.get_by_label(words["saved"]).check()  # the recovery codes, shown once
        page.get_by_role("button", name=words["continue"]).click()
        page.get_by_role("link", name=words["continue"]).click()
        assert page.url == stack.gateway_url + "/portal/"
        assert account.name in page.locator("main").inner_text()
    finally:
        context.close()


# A locked account (docs/security.md, "Locks"): told to who has the password, or a known browser.

LOCKED = {
    "en": "Too many attempts: sign-in to this account is paused. Try again in {n} {unit}, at",
    "fr": "Trop de tentatives : la connexion à ce compte est suspendue. Réessayez dans {n} {unit}, à",
}
MINUTE = {"en": ("minute", "minutes"), "fr": ("minute", "minutes")}
INVALID = {"en": "Invalid username or password.", "fr": "Nom d'utilisateur ou mot de passe incorrect."}
WRONG_CODE = {"en": "That code didn't work.", "fr": "Ce code n'a pas fonctionné."}


def error_of(page: Answer) -> str:
    error = page.soup.find(class_="error")
    return error.get_text(" ", strip=True) if error else ""


def assert_lock_message(page: Answer, language: str, minutes: int, before: float, after: float) -> None:
    assert page.status == 429, (page.status, page.text[:300])
    unit = MINUTE[language][0 if minutes == 1 else 1]
    assert LOCKED[language].format(n=minutes, unit=unit) in error_of(page), error_of(page)
    moment = page.soup.find("p", class_="error").find("time")
    assert moment is not None
    until = datetime.fromisoformat(moment["datetime"].replace("Z", "+00:00")).timestamp()
    # The lock's end, to the second, as the server's clock saw it.
    assert before + minutes * 60 - 61 <= until <= after + minutes * 60 + 1, (
        moment["datetime"],
        before,
        after,
    )
    assert moment.get_text(strip=True) == datetime.fromtimestamp(until, UTC).strftime("%H:%M UTC")
    assert 0 < int(page.response.headers["retry-after"]) <= minutes * 60


def password_page(customer: Customer, name: str) -> Answer:
    return customer.enter_username(customer.get("/portal/login"), name)


@pytest.mark.parametrize("language", ["en", "fr"])
def test_without_the_password_a_lock_looks_exactly_like_a_wrong_password(
    stack: Stack, customers: Callable[[str], Customer], language: str
) -> None:
    account = add_user(stack)
    attacker = customers(language)
    page = password_page(attacker, account.name)
    before = attacker.enter_password(page, "wrong 0")
    for attempt in range(1, 11):
        attacker.enter_password(page, f"wrong {attempt}")
    # Locked now. A guess, the right one even, from the attacker or any other unknown browser:
    for guesser, guess in ((attacker, "wrong 11"), (attacker, account.password), (customers(language), "x")):
        locked = guesser.enter_password(password_page(guesser, account.name), guess)
        assert (
            (locked.status, error_of(locked)) == (before.status, error_of(before)) == (401, INVALID[language])
        )
        assert "retry-after" not in locked.response.headers
        assert locked.soup.find("time") is None
        # The whole page is the wrong password's page, but for this browser's own form token.
        assert _without_csrf(locked.text) == _without_csrf(before.text)


def _without_csrf(text: str) -> str:
    return " ".join(word for word in text.split() if len(word) < 60)


@pytest.mark.parametrize("language", ["en", "fr"])
def test_after_the_password_a_locked_account_is_told_how_long_to_wait(
    stack: Stack, customers: Callable[[str], Customer], language: str
) -> None:
    account = add_user(stack)
    first_login(customers(language), account)
    customer = customers(language)
    page = to_code_page(customer, account)
    for _ in range(5):
        wrong = customer.enter_code(page, wrong_code_for(account.secret))
        assert (wrong.status, WRONG_CODE[language] in error_of(wrong)) == (401, True)
    started = time.time()
    locked = customer.enter_code(page, totp_now(account.secret, offset_steps=1))
    assert_lock_message(locked, language, 1, started, time.time())
    # The next try, too, says how long is left (the customer's wait, not a fresh one).
    again = customer.enter_code(page, totp_now(account.secret, offset_steps=1))
    assert_lock_message(again, language, 1, started, time.time())
    # The form is still there, for when the wait is over.
    assert again.form("/mfa/verify")["csrf_token"]


@pytest.mark.parametrize("language", ["en", "fr"])
def test_a_known_browser_is_told_how_long_to_wait_at_the_password_step(
    stack: Stack, customers: Callable[[str], Customer], language: str
) -> None:
    account = add_user(stack)
    owner = customers(language)
    portal = first_login(owner, account)  # this browser is now known to the account (its device cookie)
    assert owner.submit(portal, "/portal/logout-everywhere").path == "/"
    page = password_page(owner, account.name)
    for attempt in range(10):
        assert error_of(owner.enter_password(page, f"typo {attempt}")) == INVALID[language]
    started = time.time()
    locked = owner.enter_password(page, "typo 10")
    assert_lock_message(locked, language, 1, started, time.time())
    # An unknown browser learns nothing of it: its wrong password is just that.
    stranger = customers(language)
    answer = stranger.enter_password(password_page(stranger, account.name), "a guess")
    assert (answer.status, error_of(answer)) == (401, INVALID[language])


@pytest.mark.browser
@pytest.mark.parametrize(
    ("device", "language", "zone"),
    [(DESKTOP, "en", "America/New_York"), (PHONE, "fr", "Asia/Tokyo"), (PHONE, "en", "Europe/Paris")],
    ids=["desktop-en", "phone-fr", "phone-en"],
)
def test_in_chromium_the_lock_message_shows_the_local_time(
    stack: Stack, browser: Browser, device: dict[str, Any], language: str, zone: str
) -> None:
    words = WORDS[language]
    label = f"{'phone' if device is PHONE else 'desktop'}-{language}"
    account = add_user(stack)
    enrolling = Customer(stack.gateway_url)
    try:
        first_login(enrolling, account)
    finally:
        enrolling.close()
    context = browser.new_context(
        **{**device, "locale": "fr-FR" if language == "fr" else "en-GB", "timezone_id": zone}
    )
    page = context.new_page()
    try:
        page.goto(stack.gateway_url + "/portal/login")
        page.get_by_label(words["username"]).fill(account.name)
        page.get_by_role("button", name=words["log_in"]).click()
        page.get_by_label(words["password"]).fill(account.password)
        page.get_by_role("button", name=words["continue"]).click()
        for _ in range(6):  # five wrong codes, then the lock
            page.get_by_label(words["code"]).fill(wrong_code_for(account.secret))
            page.get_by_role("button", name=words["continue"]).click()
            page.get_by_role("alert").wait_for()
        alert = page.get_by_role("alert").inner_text()
        assert alert.startswith(LOCKED[language].format(n=1, unit="minute")), alert
        moment = page.locator("p.error time")
        until = datetime.fromisoformat(str(moment.get_attribute("datetime")).replace("Z", "+00:00"))
        local = until.astimezone(ZoneInfo(zone))
        shown = moment.inner_text()
        # The script wrote it in the browser's zone (24-hour in en-GB and fr).
        assert local.strftime("%H:%M") in shown, (shown, local)
        assert until.strftime("%H:%M UTC") not in shown
        keep_screenshot(page, f"{label}-locked")
        assert_accessible(page)
    finally:
        context.close()


# nginx's own pages: 429 from its rate limit, and a service that is down


GATEWAY = {
    "en": {
        "too_many": "Too many requests",
        "unavailable": "Temporarily unavailable",
        "back": "Back to the customer portal",
    },
    "fr": {
        "too_many": "Trop de demandes",
        "unavailable": "Temporairement indisponible",
        "back": "Retour au portail client",
    },
}
UNAVAILABLE = {
    "en": "Sign-in is unavailable right now. Please try again in a minute.",
    "fr": "La connexion est indisponible pour le moment. Veuillez réessayer dans une minute.",
}


def rate_limited(customer: Customer) -> httpx.Response:
    """POSTs from the customer's address past the gateway's burst (cheap ones, refused at once),
    each thread with a client of its own: its first 429, with the customer's cookies and language."""

    def burst(_: int) -> list[httpx.Response]:
        with httpx.Client(
            base_url=customer.gateway_url,
            transport=httpx.HTTPTransport(local_address=customer.ip),
            headers=customer.http.headers,
            cookies=customer.http.cookies,
        ) as http:
            return [http.post("/mfa/verify", data={"code": "1"}) for _ in range(8)]

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = [answer for answers in pool.map(burst, range(16)) for answer in answers]
    limited = [answer for answer in answers if answer.status_code == 429]
    assert limited, [answer.status_code for answer in answers]
    return limited[0]


@contextmanager
def sustained_burst(gateway_url: str) -> Iterator[None]:
    """POSTs from 127.0.0.1 (the browser's address) past the gateway's burst, kept up meanwhile:
    nginx forgets refused requests, so the bucket is full only while the pressure lasts."""
    stop = threading.Event()

    def press() -> None:
        with httpx.Client(base_url=gateway_url) as http:
            while not stop.is_set():
                http.post("/mfa/verify", data={"code": "1"})

    with ThreadPoolExecutor(max_workers=16) as pool:
        for _ in range(16):
            pool.submit(press)
        try:
            with httpx.Client(base_url=gateway_url) as http:
                deadline = time.monotonic() + 30
                while http.post("/mfa/verify", data={"code": "1"}).status_code != 429:
                    assert time.monotonic() < deadline, "the gateway never limited the burst"
            yield
        finally:
            stop.set()


def assert_gateway_page(response: httpx.Response, language: str, heading: str, brand: str) -> Answer:
    page = Answer(response)
    html = page.soup.find("html")
    assert html is not None and html.get("lang") == language, response.text[:300]
    assert page.soup.find("h1").get_text(strip=True) == GATEWAY[language][heading]
    assert page.soup.find("a", class_="button").get_text(strip=True) == GATEWAY[language]["back"]
    # The product's layout: its stylesheet (served by the gateway itself) and brand header.
    assert page.soup.find("link", rel="stylesheet")["href"] == "/.gateway/style.css"
    assert page.soup.find("header", class_="brand").get_text(strip=True) == brand
    assert response.headers["content-type"].startswith("text/html")
    return page


@pytest.mark.parametrize(
    ("cookie", "accept_language", "language"),
    [
        (None, "en-GB,en;q=0.9", "en"),
        (None, FRENCH, "fr"),
        (None, "de-DE,de;q=0.9,fr;q=0.8,en;q=0.7", "fr"),
        (None, "", "en"),
        ("fr", "en-GB,en;q=0.9", "fr"),  # the switch's cookie outweighs the browser
        ("en", FRENCH, "en"),
    ],
)
def test_the_gateways_429_is_in_the_customers_language_with_its_retry_after(
    stack: Stack, cookie: str | None, accept_language: str, language: str
) -> None:
    customer = Customer(stack.gateway_url)
    try:
        customer.http.headers["accept-language"] = accept_language
        if cookie is not None:
            customer.http.cookies.set("lang", cookie, domain="127.0.0.1", path="/")
        limited = rate_limited(customer)
        assert limited.headers["retry-after"] == "1"
        assert_gateway_page(limited, language, "too_many", "Orange Business")
        css = customer.http.get("/.gateway/style.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    finally:
        customer.close()


def test_a_services_own_429_keeps_its_retry_after(stack: Stack, customers: Callable[[str], Customer]) -> None:
    account = add_user(stack)
    first_login(customers("en"), account)
    customer = customers("en")
    page = to_code_page(customer, account)
    for _ in range(6):
        answer = customer.enter_code(page, wrong_code_for(account.secret))
    assert answer.status == 429
    # mfa's own wait, not the gateway's one second.
    assert answer.response.headers.get_list("retry-after") == [answer.response.headers["retry-after"]]
    assert 50 <= int(answer.response.headers["retry-after"]) <= 60


@pytest.fixture(scope="module")
def outage_stack(make_stack: Callable[..., Stack]) -> Stack:
    """A stack of this module's own, whose services are stopped one by one; its brand is a setting."""
    return make_stack(SSO_BRAND_NAME="Acme Telecom")


def test_service_unavailable_is_told_in_both_languages_by_every_service_and_by_the_gateway(
    outage_stack: Stack,
) -> None:
    stack = outage_stack
    signed_in: dict[str, Customer] = {}
    at_code_page: dict[str, tuple[Customer, Answer]] = {}
    at_set_up: dict[str, tuple[Customer, Answer]] = {}
    try:
        for language in LANGUAGES:
            account = add_user(stack)
            signed_in[language] = _customer(stack, language)
            first_login(signed_in[language], account)
            waiting = _customer(stack, language)
            at_code_page[language] = (waiting, to_code_page(waiting, account))
            newcomer = _customer(stack, language)
            at_set_up[language] = (newcomer, to_code_page(newcomer, add_user(stack)))

        # The session service down: the portal and auth answer with their own calm page.
        stack.stop_service("session")
        for language, customer in signed_in.items():
            portal = Answer(customer.http.get("/", follow_redirects=False))
            auth = Answer(customer.http.get("/portal/login"))
            for page, path in ((portal, "/"), (auth, "/auth/authorize")):
                assert (page.status, page.path) == (503, path), (page.status, page.path, page.text[:200])
                assert UNAVAILABLE[language] in page.text
                assert page.soup.find("html").get("lang") == language
                assert "Acme Telecom" in page.soup.find("header", class_="brand").get_text()

        # auth down: mfa cannot have the code counted, so it checks none and says so; and the
        # gateway answers for auth itself (nginx's 502) with its own page.
        stack.stop_service("auth")
        for language, (customer, page) in at_code_page.items():
            code = customer.enter_code(page, "123456")
            assert (code.status, code.path) == (503, "/mfa/verify"), (code.status, code.path, code.text[:200])
            assert UNAVAILABLE[language] in code.text and code.soup.find("html").get("lang") == language
            assert "Acme Telecom" in code.soup.find("header", class_="brand").get_text()
            assert code.soup.find("link", rel="stylesheet")["href"] == "/mfa/static/style.css"
        for language, (customer, page) in at_set_up.items():
            done = customer.enter_setup_code(page, totp_now(page.by_id("totp-secret").replace(" ", "")))
            # A set-up needs no count from auth: it is the Continue page (auth) that is down.
            assert done.status == 503, (done.status, done.path, done.text[:200])
            assert_gateway_page(done.response, language, "unavailable", "Acme Telecom")
            assert UNAVAILABLE[language] in done.text
            login = customer.http.get("/auth/login")
            assert login.status_code == 503
            assert_gateway_page(login, language, "unavailable", "Acme Telecom")

        # The portal down too: the landing page is the gateway's.
        stack.stop_service("portal")
        for language, customer in signed_in.items():
            landing = customer.http.get("/")
            assert landing.status_code == 503
            assert_gateway_page(landing, language, "unavailable", "Acme Telecom")
            assert UNAVAILABLE[language] in landing.text
            assert "Traceback" not in landing.text
    finally:
        others = [customer for customer, _page in [*at_code_page.values(), *at_set_up.values()]]
        for customer in [*signed_in.values(), *others]:
            customer.close()


@pytest.mark.browser
@pytest.mark.parametrize(
    ("device", "language"),
    [(DESKTOP, "en"), (PHONE, "fr"), (DESKTOP, "fr"), (PHONE, "en")],
    ids=["desktop-en", "phone-fr", "desktop-fr", "phone-en"],
)
def test_in_chromium_the_gateways_429_and_unavailable_pages_are_the_products_pages(
    stack: Stack, outage_stack: Stack, browser: Browser, device: dict[str, Any], language: str
) -> None:
    words, label = GATEWAY[language], f"{'phone' if device is PHONE else 'desktop'}-{language}"
    context, page = _open(browser, device, language)
    try:
        # 429: the browser's address goes past the gateway's POST burst, then sends the username form.
        # The bucket lets one request through every 100 ms, to whoever asks first: should the
        # browser's be that one, it tries again (a few times at most).
        with sustained_burst(stack.gateway_url):
            for _attempt in range(5):
                page.goto(stack.gateway_url + "/portal/login")
                page.get_by_label(WORDS[language]["username"]).fill("nobody-at-all")
                with page.expect_response(lambda answer: answer.url.endswith("/auth/login/username")) as sent:
                    page.get_by_role("button", name=WORDS[language]["log_in"]).click()
                if sent.value.status == 429:
                    break
        assert sent.value.status == 429 and sent.value.headers["retry-after"] == "1"
        assert page.locator("h1").inner_text() == words["too_many"]
        assert page.locator("html").get_attribute("lang") == language
        # Styled by the product's stylesheet: the brand bar is the product's, not a bare page.
        assert page.locator("header.brand").evaluate("e => getComputedStyle(e).display") == "flex"
        keep_screenshot(page, f"{label}-gateway-429")
        assert_accessible(page)

        # A service down: nginx's 502 is the product's "unavailable" page, in the same language.
        outage_stack.stop_service("portal")
        answer = page.goto(outage_stack.gateway_url + "/")
        assert answer is not None and answer.status == 503
        assert page.locator("h1").inner_text() == words["unavailable"]
        assert UNAVAILABLE[language] in page.get_by_role("alert").inner_text()
        assert "Acme Telecom" in page.locator("header.brand").inner_text()
        keep_screenshot(page, f"{label}-gateway-unavailable")
        assert_accessible(page)
    finally:
        context.close()
        time.sleep(2.5)  # the burst drains (10 r/s): the next test's browser is on the same address
