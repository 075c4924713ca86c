"""Junk sent to every POST endpoint through the gateway gets a calm 4xx, never a 5xx or a trace.

Each endpoint is first brought to a state where a proper request would be accepted (the right
sign-in step, a live session, this browser's CSRF token), so a refusal is for the junk alone.
"""

import base64
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest

from devstack import Stack

from .customer import Customer, Page
from .flows import add_user, first_login, sign_in_to_code_page

# What a stack trace or a leaked exception looks like in a page.
LEAKS = re.compile(
    r"Traceback|File \"|\b[A-Z][A-Za-z]*(?:Error|Exception)\b|asyncpg|pydantic|starlette|nginx/"
)


@dataclass
class Endpoint:
    path: str
    # The fields of a proper request besides csrf_token, and the one the junk goes into.
    fields: dict[str, str]
    poisoned: str
    csrf: bool = True
    # Brings a fresh customer to the page this form is on; None: no page (OAuth endpoints).
    prepare: Callable[[Stack, Customer], Page] | None = None
    # The form on that page whose hidden fields (the CSRF token) go along; default: path.
    form: str = ""

    @property
    def form_action(self) -> str:
        return self.form or self.path


def username_page(stack: Stack, customer: Customer) -> Page:
    return customer.start_login()


def password_page(stack: Stack, customer: Customer) -> Page:
    return customer.enter_username(customer.start_login(), add_user(stack).name)


def mfa_page(stack: Stack, customer: Customer) -> Page:
    return sign_in_to_code_page(customer, add_user(stack))


def portal_page(stack: Stack, customer: Customer) -> Page:
    page = first_login(customer, add_user(stack))
    assert page.path == "/portal/"
    return page


def logout_confirm_page(stack: Stack, customer: Customer) -> Page:
    """A link to sign out, without the client's proof: a signed-in customer is asked first."""
    portal_page(stack, customer)
    target = quote(f"{stack.gateway_url}/", safe="")
    return customer.get(f"/auth/logout?client_id=portal&post_logout_redirect_uri={target}")


def portal_credentials(stack: Stack) -> dict[str, str]:
    secret = (stack.secrets_dir / "portal-client-secret").read_text().strip()
    return {"client_id": "portal", "client_secret": secret}


ENDPOINTS: dict[str, Endpoint] = {
    "auth username": Endpoint(
        "/auth/login/username", {"username": "alice"}, "username", prepare=username_page
    ),
    "auth password": Endpoint(
        "/auth/login/password", {"password": "a long password"}, "password", prepare=password_page
    ),
    "auth logout": Endpoint("/auth/logout", {}, "client_id", prepare=logout_confirm_page),
    "auth token": Endpoint(
        "/auth/token",
        {"grant_type": "authorization_code", "code": "nope", "redirect_uri": "http://127.0.0.1:9/cb"},
        "client_id",
        csrf=False,
    ),
    "auth userinfo": Endpoint("/auth/userinfo", {"scope": "openid"}, "scope", csrf=False),
    "mfa setup": Endpoint("/mfa/setup", {"code": "123456"}, "code", prepare=mfa_page),
    "mfa verify": Endpoint("/mfa/verify", {"code": "123456"}, "code", prepare=mfa_page, form="/mfa/setup"),
    "portal logout": Endpoint("/portal/logout", {}, "csrf_token", prepare=portal_page),
    "portal logout everywhere": Endpoint("/portal/logout-everywhere", {}, "csrf_token", prepare=portal_page),
}


@dataclass
class Prepared:
    customer: Customer
    fields: dict[str, str]


@pytest.fixture(scope="module")
def prepared(stack: Stack) -> Iterator[Callable[[str], Prepared]]:
    """One customer per endpoint, at the page of its form; junk is refused, so they stay there."""
    made: dict[str, Prepared] = {}

    def get(name: str) -> Prepared:
        if name not in made:
            endpoint = ENDPOINTS[name]
            customer = Customer(stack.gateway_url)
            fields = dict(endpoint.fields)
            if endpoint.prepare is not None:
                page = endpoint.prepare(stack, customer)
                assert page.status == 200, page.text[:300]
                fields = {**page.form(endpoint.form_action), **fields}
                if endpoint.csrf:
                    assert fields.get("csrf_token"), f"no CSRF token on {page.path}"
            if endpoint.path == "/auth/token":
                fields.update(portal_credentials(stack))
            made[name] = Prepared(customer, fields)
        return made[name]

    yield get
    for each in made.values():
        each.customer.close()


def urlencoded(fields: dict[str, str | bytes]) -> bytes:
    parts = []
    for name, value in fields.items():
        raw = value if isinstance(value, bytes) else quote(value, safe="").encode()
        parts.append(quote(name, safe="").encode() + b"=" + raw)
    return b"&".join(parts)


FORM = {"content-type": "application/x-www-form-urlencoded"}


def junk_request(case: str, fields: dict[str, str], poisoned: str) -> dict[str, object]:
    """httpx.post keyword arguments for one kind of junk."""
    if case == "1 MB value":
        return {"content": urlencoded({**fields, poisoned: "a" * 1_000_000}), "headers": FORM}
    if case == "60 kB value":
        return {"content": urlencoded({**fields, poisoned: "a" * 60_000}), "headers": FORM}
    if case == "NUL byte":
        return {"content": urlencoded({**fields, poisoned: "ab\x00cd"}), "headers": FORM}
    if case == "NUL byte in another field":
        return {"content": urlencoded({**fields, "extra": "\x00"}), "headers": FORM}
    if case == "raw bytes that are not UTF-8":
        return {"content": urlencoded({**fields, poisoned: b"\xff\xfe"}), "headers": FORM}
    if case == "percent-encoded bytes that are not UTF-8":
        return {"content": urlencoded({**fields, poisoned: b"%ff%fe%C0%AF"}), "headers": FORM}
    if case == "no CSRF token":
        return {
            "content": urlencoded({k: v for k, v in fields.items() if k != "csrf_token"}),
            "headers": FORM,
        }
    if case == "plain text body":
        return {"content": urlencoded(fields), "headers": {"content-type": "text/plain"}}
    if case == "JSON instead of a form":
        return {"json": fields}
    if case == "multipart form with a NUL byte":
        return {"data": {**fields, poisoned: "ab\x00cd"}, "files": {"upload": ("a.txt", b"a")}}
    raise AssertionError(case)


CASES = (
    "1 MB value",
    "60 kB value",
    "NUL byte",
    "NUL byte in another field",
    "raw bytes that are not UTF-8",
    "percent-encoded bytes that are not UTF-8",
    "no CSRF token",
    "plain text body",
    "JSON instead of a form",
    "multipart form with a NUL byte",
)
# Where the answer must be exactly this status, not just any 4xx.
EXACT = {
    "1 MB value": 413,
    "NUL byte": 400,
    "NUL byte in another field": 400,
    "raw bytes that are not UTF-8": 400,
    "percent-encoded bytes that are not UTF-8": 400,
    # No form of ours is multipart: refused before any field is read (it skipped the NUL check).
    "multipart form with a NUL byte": 415,
}


def assert_calm(response: httpx.Response) -> None:
    body = response.text
    leak = LEAKS.search(body)
    assert leak is None, f"{response.status_code} leaks {leak.group(0)!r}: {body[:500]}"
    assert len(body) < 20_000, "an error page is short"


# OAuth endpoints have no form and no CSRF token (the client authenticates): so that case does not apply to them.
JUNK = [
    (endpoint, case)
    for endpoint in sorted(ENDPOINTS)
    for case in CASES
    if ENDPOINTS[endpoint].csrf or case != "no CSRF token"
]


@pytest.mark.parametrize(("endpoint", "case"), JUNK)
def test_junk_gets_a_calm_client_error(
    stack: Stack, prepared: Callable[[str], Prepared], endpoint: str, case: str
) -> None:
    spec = ENDPOINTS[endpoint]
    ready = prepared(endpoint)

    response = ready.customer.http.post(
        spec.path, follow_redirects=False, **junk_request(case, ready.fields, spec.poisoned)
    )

    assert 400 <= response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
    assert response.status_code != 429, "rate-limited: the test sent too much from one address"
    if case in EXACT:
        assert response.status_code == EXACT[case], response.text[:300]
    if case == "1 MB value":
        assert "Request too large" in response.text
    assert_calm(response)
    # Refused, so nothing happened: no new session cookie, no step forward.
    changed = [c for c in response.headers.get_list("set-cookie") if not c.startswith("browser=")]
    assert changed == [], changed


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_the_proper_request_is_not_refused_as_junk(
    stack: Stack, prepared: Callable[[str], Prepared], endpoint: str
) -> None:
    """The control: the same customer's proper request gets past the input checks."""
    spec = ENDPOINTS[endpoint]
    ready = prepared(endpoint)
    if endpoint in ("portal logout", "portal logout everywhere", "auth logout"):
        # A proper logout would end what the junk cases need; a fresh customer shows it instead.
        ready = Prepared(Customer(stack.gateway_url), {})
        page = spec.prepare(stack, ready.customer) if spec.prepare else None
        assert page is not None
        ready.fields = page.form(spec.form_action)
    try:
        response = ready.customer.http.post(
            spec.path, content=urlencoded(ready.fields), headers=FORM, follow_redirects=False
        )
    finally:
        if endpoint in ("portal logout", "portal logout everywhere", "auth logout"):
            ready.customer.close()

    expected = {
        "auth username": 303,
        "auth password": 401,  # the user exists, the password is not theirs: a checked refusal
        "auth logout": 303,
        "auth token": 400,  # the client authenticated; the code is unknown: invalid_grant
        "auth userinfo": 401,  # no bearer token
        "mfa setup": 401,  # a checked wrong code
        "mfa verify": 303,  # not enrolled yet: back to the set-up page
        "portal logout": 303,
        "portal logout everywhere": 303,
    }[endpoint]
    assert response.status_code == expected, response.text[:300]
    if endpoint == "auth token":
        assert response.json()["error"] == "invalid_grant"


def test_a_nul_byte_in_basic_client_credentials_is_a_calm_401(stack: Stack) -> None:
    credentials = base64.b64encode(b"por\x00tal:" + secrets.token_urlsafe(8).encode()).decode()
    response = httpx.post(
        f"{stack.gateway_url}/auth/token",
        data={"grant_type": "authorization_code", "code": "x", "redirect_uri": "http://127.0.0.1:9/cb"},
        headers={"authorization": f"Basic {credentials}"},
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "query",
    [
        "/auth/authorize?client_id=%00&response_type=code",
        "/auth/authorize?client_id=portal%ff",
        "/auth/logout?client_id=%00&post_logout_redirect_uri=x",
        "/portal/callback?code=%00&state=%00",
    ],
)
def test_junk_in_a_query_string_is_a_calm_400(stack: Stack, query: str) -> None:
    response = httpx.get(f"{stack.gateway_url}{query}", follow_redirects=False)

    assert response.status_code == 400, response.text[:300]
    assert_calm(response)
