"""A customer's browser for the bench: an async HTTP client on its own loopback address, and the
steps of the customer guide, each one a few requests through the gateway."""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx

from tests.customer import next_client_ip
from tests.external_tools import totp_now


class FlowError(RuntimeError):
    """The product answered something other than the page the customer guide promises."""


class _PageParts(HTMLParser):
    """The bits of a page a customer acts on: hidden form fields, and elements by id."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}
        self.by_id: dict[str, dict[str, str]] = {}
        self.text_of_id: dict[str, str] = {}
        self._form: dict[str, str] | None = None
        self._open_id: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form = self.forms.setdefault(values.get("action", ""), {})
        elif tag == "input" and self._form is not None and values.get("type") == "hidden":
            self._form[values.get("name", "")] = values.get("value", "")
        if "id" in values:
            self.by_id[values["id"]] = values
            self._open_id = values["id"]
            self.text_of_id[values["id"]] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        self._open_id = None

    def handle_data(self, data: str) -> None:
        if self._open_id is not None:
            self.text_of_id[self._open_id] += data


@dataclass
class Page:
    response: httpx.Response
    parts: _PageParts = field(init=False)

    def __post_init__(self) -> None:
        self.parts = _PageParts()
        self.parts.feed(self.response.text)

    @property
    def path(self) -> str:
        return self.response.url.path

    def expect(self, path: str, status: int = 200) -> "Page":
        if (self.response.status_code, self.path) != (status, path):
            raise FlowError(
                f"expected {status} {path}, got {self.response.status_code} {self.path}: "
                f"{unescape(self.response.text[:200])!r}"
            )
        return self

    def form(self, action: str) -> dict[str, str]:
        if action not in self.parts.forms:
            raise FlowError(f"no form posting to {action} on {self.path}")
        return self.parts.forms[action]

    def href(self, element_id: str) -> str:
        try:
            return self.parts.by_id[element_id]["href"]
        except KeyError as error:
            raise FlowError(f"no link #{element_id} on {self.path}") from error

    def text(self, element_id: str) -> str:
        if element_id not in self.parts.text_of_id:
            raise FlowError(f"no #{element_id} on {self.path}")
        return self.parts.text_of_id[element_id].strip()


@dataclass
class Account:
    name: str
    password: str
    secret: str = ""


class Browser:
    """One customer: its own cookie jar and source address; counts the requests it makes."""

    def __init__(self, gateway_url: str) -> None:
        self.ip = next_client_ip()
        self.requests = 0
        self.http = httpx.AsyncClient(
            base_url=gateway_url,
            transport=httpx.AsyncHTTPTransport(local_address=self.ip),
            follow_redirects=True,
            timeout=60.0,
            event_hooks={"request": [self._count]},
        )
        self.page: Page | None = None

    async def _count(self, request: httpx.Request) -> None:
        self.requests += 1

    async def aclose(self) -> None:
        await self.http.aclose()

    async def get(self, path: str) -> Page:
        self.page = Page(await self.http.get(path))
        return self.page

    async def submit(self, action: str, **fields: str) -> Page:
        if self.page is None:
            raise FlowError(f"nothing to submit {action} from")
        data = {**self.page.form(action), **fields}
        self.page = Page(await self.http.post(urljoin(str(self.page.response.url), action), data=data))
        return self.page

    def current(self) -> Page:
        if self.page is None:
            raise FlowError("no page yet")
        return self.page

    def cookie_header(self, path: str = "/") -> str:
        """The Cookie header this browser sends for `path` at the gateway (for ab)."""
        return "; ".join(
            f"{cookie.name}={cookie.value}"
            for cookie in self.http.cookies.jar
            if path.startswith(cookie.path)
        )


# The customer guide, step by step. Each step leaves the browser on the page the next one needs.

Step = Callable[[Browser, Account], Awaitable[None]]


async def open_landing(browser: Browser, account: Account) -> None:
    (await browser.get("/")).expect("/")


# Where Login led before authorize answered with the username page itself: a redirect on to it.
USERNAME_PAGE_BY_REDIRECT = "/auth/login"


async def press_login(browser: Browser, account: Account) -> None:
    page = await browser.get("/portal/login")
    # A baseline from before (BENCH_BASELINE) takes one request more, to /auth/login.
    if page.path != USERNAME_PAGE_BY_REDIRECT:
        page.expect("/auth/authorize")
    page.form("/auth/login/username")


async def enter_username(browser: Browser, account: Account) -> None:
    (await browser.submit("/auth/login/username", username=account.name)).expect("/auth/login")


async def enter_password(browser: Browser, account: Account) -> None:
    (await browser.submit("/auth/login/password", password=account.password)).expect("/mfa/")


# Where a set-up led before recovery codes: the Continue page.
WITHOUT_RECOVERY_CODES = "/auth/login/complete"


async def set_up_authenticator(browser: Browser, account: Account) -> None:
    account.secret = browser.current().text("totp-secret").replace(" ", "")
    page = await browser.submit("/mfa/setup", code=totp_now(account.secret))
    # A baseline from before recovery codes (BENCH_BASELINE) goes straight on to Continue.
    if page.path != WITHOUT_RECOVERY_CODES:
        page.expect("/mfa/recovery-codes")


async def save_recovery_codes(browser: Browser, account: Account) -> None:
    """The codes shown once after the set-up: ticked as saved, on to the Continue page."""
    if browser.current().path == WITHOUT_RECOVERY_CODES:
        return
    (await browser.submit("/mfa/recovery-codes/saved", saved="yes")).expect(WITHOUT_RECOVERY_CODES)


async def enter_code(browser: Browser, account: Account) -> None:
    # The next step's code: the set-up a moment ago used this step's, and each is good once.
    page = await browser.submit("/mfa/verify", code=totp_now(account.secret, offset_steps=1))
    page.expect("/auth/login/complete")


async def press_continue(browser: Browser, account: Account) -> None:
    (await browser.get(browser.current().href("continue"))).expect("/portal/")


async def come_back_with_sso(browser: Browser, account: Account) -> None:
    """Login with a live SSO session: no prompt, straight to the portal page."""
    (await browser.get("/portal/login")).expect("/portal/")


FIRST_SIGN_IN: list[tuple[str, Step]] = [
    ("landing", open_landing),
    ("login", press_login),
    ("username", enter_username),
    ("password", enter_password),
    ("set-up", set_up_authenticator),
    ("recovery codes", save_recovery_codes),
    ("continue", press_continue),
]
LATER_SIGN_IN: list[tuple[str, Step]] = [
    ("landing", open_landing),
    ("login", press_login),
    ("username", enter_username),
    ("password", enter_password),
    ("code", enter_code),
    ("continue", press_continue),
]


async def timed(step: Step, browser: Browser, account: Account) -> float:
    started = time.perf_counter()
    await step(browser, account)
    return time.perf_counter() - started
