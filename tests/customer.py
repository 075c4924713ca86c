"""A customer in a plain HTTP client: follows the pages through the gateway as a browser would."""

import base64
import itertools
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx
from bs4 import BeautifulSoup

_addresses = itertools.count(10)


def next_client_ip() -> str:
    """A distinct loopback source address per simulated customer."""
    n = next(_addresses)
    return f"127.42.{n // 250}.{n % 250 + 1}"


@dataclass
class Page:
    response: httpx.Response

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def path(self) -> str:
        return self.response.url.path

    @property
    def soup(self) -> BeautifulSoup:
        return BeautifulSoup(self.response.text, "html.parser")

    @property
    def text(self) -> str:
        return self.soup.get_text(" ", strip=True)

    def form(self, action: str) -> dict[str, str]:
        form = self.soup.find("form", action=action)
        assert form is not None, f"no form posting to {action} on {self.path}: {self.text[:300]}"
        return {
            field["name"]: field.get("value", "")
            for field in form.find_all("input")
            if field.get("name") and field.get("type") == "hidden"
        }

    def by_id(self, element_id: str) -> str:
        element = self.soup.find(id=element_id)
        assert element is not None, f"no #{element_id} on {self.path}: {self.text[:300]}"
        return str(element.get_text(strip=True))

    def link(self, element_id: str) -> str:
        element = self.soup.find(id=element_id)
        assert element is not None, f"no #{element_id} on {self.path}"
        return str(element["href"])

    def recovery_codes(self) -> list[str]:
        listed = self.soup.find(id="recovery-codes")
        assert listed is not None, f"no recovery codes on {self.path}: {self.text[:300]}"
        return [item.get_text(strip=True) for item in listed.find_all("li")]

    def qr_png(self) -> bytes:
        image = self.soup.find("img", src=lambda src: bool(src) and src.startswith("data:image/png;base64,"))
        assert image is not None, f"no QR image on {self.path}"
        return base64.b64decode(image["src"].split(",", 1)[1])


class Customer:
    def __init__(self, gateway_url: str, ip: str | None = None) -> None:
        self.gateway_url = gateway_url
        self.ip = ip or next_client_ip()
        self.http = httpx.Client(
            base_url=gateway_url,
            transport=httpx.HTTPTransport(local_address=self.ip),
            follow_redirects=True,
            timeout=30.0,
        )
        # The recovery codes this customer was shown last (enter_setup_code keeps them).
        self.recovery_codes: list[str] = []

    def close(self) -> None:
        self.http.close()

    def get(self, path: str) -> Page:
        return Page(self.http.get(path))

    def submit(self, page: Page, action: str, **fields: str) -> Page:
        data = {**page.form(action), **fields}
        return Page(self.http.post(urljoin(str(page.response.url), action), data=data))

    def get_until_outside(self, path: str, outside_prefix: str) -> httpx.Response:
        """Follows redirects by hand and stops at the first one that leaves for outside_prefix."""
        response = self.http.get(path, follow_redirects=False)
        for _ in range(10):
            location = response.headers.get("location")
            if response.status_code not in (302, 303) or location is None:
                return response
            target = urljoin(str(response.url), location)
            if target.startswith(outside_prefix):
                return response
            response = self.http.get(target, follow_redirects=False)
        raise AssertionError("too many redirects")

    # the customer guide, step by step

    def start_login(self) -> Page:
        landing = self.get("/")
        assert landing.status == 200, landing.text[:300]
        login = landing.soup.find("a", string=lambda text: bool(text) and text.strip() == "Login")
        assert login is not None, f"no Login button on the landing page: {landing.text[:300]}"
        return self.get(str(login["href"]))

    def enter_username(self, page: Page, username: str) -> Page:
        # authorize's own answer at the start, /auth/login after a refresh or a language switch
        assert page.path in ("/auth/authorize", "/auth/login"), f"expected the username page, got {page.path}"
        return self.submit(page, "/auth/login/username", username=username)

    def enter_password(self, page: Page, password: str) -> Page:
        return self.submit(page, "/auth/login/password", password=password)

    def enter_setup_code(self, page: Page, code: str, *, save_codes: bool = True) -> Page:
        """The set-up code; when it is right, the recovery codes shown once are kept in
        `recovery_codes` and ticked as saved (save_codes=False: stops at their page)."""
        page = self.submit(page, "/mfa/setup", code=code)
        if save_codes and (page.status, page.path) == (200, "/mfa/recovery-codes"):
            return self.save_recovery_codes(page)
        return page

    def save_recovery_codes(self, page: Page) -> Page:
        """Keeps the codes the page shows, ticks "I have saved these codes" and goes on."""
        assert page.path == "/mfa/recovery-codes", f"expected the recovery codes, got {page.path}"
        self.recovery_codes = page.recovery_codes()
        return self.submit(page, "/mfa/recovery-codes/saved", saved="yes")

    def enter_recovery_code(self, page: Page, code: str) -> Page:
        """From the code page: "Use a recovery code", then the code."""
        form = self.get(page.link("use-recovery-code"))
        assert (form.status, form.path) == (200, "/mfa/recovery"), form.text[:300]
        return self.submit(form, "/mfa/recovery", recovery_code=code)

    def enter_code(self, page: Page, code: str) -> Page:
        return self.submit(page, "/mfa/verify", code=code)

    def press_continue(self, page: Page) -> Page:
        assert page.path == "/auth/login/complete", f"expected the Continue page, got {page.path}"
        return self.get(page.link("continue"))

    def cookie_names(self) -> set[str]:
        return {cookie.name for cookie in self.http.cookies.jar}


def path_of(url: str) -> str:
    return urlsplit(url).path
