"""What the fault tests share: throwaway datastores they may stop, and how a calm outage looks."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from devstack import datastores
from devstack.stack import Stack

from .customer import Customer, Page
from .flows import Account, first_login

UNAVAILABLE = "Sign-in is unavailable right now. Please try again in a minute."


@contextmanager
def throwaway_redis(state_dir: Path, *extra_args: str) -> Iterator[dict[str, Any]]:
    """A Redis of this test's own; append-only, so a restart keeps what it had acknowledged."""
    record = datastores.start_throwaway_redis(state_dir, extra_args=("--appendonly", "yes", *extra_args))
    try:
        yield record
    finally:
        datastores.stop_throwaway_redis(record)


@contextmanager
def throwaway_postgres(state_dir: Path) -> Iterator[dict[str, Any]]:
    record = datastores.start_throwaway_postgres(state_dir)
    try:
        yield record
    finally:
        datastores.stop_throwaway_postgres(record)


def assert_calm_outage_page(page: Page) -> None:
    """503, the one sentence, in the page layout (the stylesheet and the brand), and no trace."""
    assert page.status == 503, (page.status, page.path, page.text[:300])
    assert UNAVAILABLE in page.text, page.text[:300]
    assert page.soup.find("link", rel="stylesheet") is not None, page.response.text[:300]
    assert page.soup.find("header", class_="brand") is not None
    assert "Traceback" not in page.response.text


def assert_json_outage(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["message"] == UNAVAILABLE


def probe(stack: Stack, service: str, path: str) -> int:
    """A service's own /healthz or /readyz (the gateway routes neither), on its first replica."""
    return httpx.get(f"{stack.service_url(service)}{path}", timeout=5).status_code


def log_lines(stack: Stack, service: str) -> list[dict[str, Any]]:
    """The JSON lines of a service's log (its first replica)."""
    lines = []
    for line in stack.log_path(service).read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            lines.append({"unparsed": line})
    return lines


def re_entry(customer: Customer) -> None:
    """Log out of the portal and press Login: straight back in, on the live SSO session."""
    page = customer.submit(customer.get("/portal/"), "/portal/logout")
    assert page.path == "/", (page.status, page.text[:200])
    page = customer.start_login()
    assert (page.status, page.path) == (200, "/portal/"), (page.status, page.text[:200])


def whole_journey(customer: Customer, account: Account) -> None:
    """A wrong password, sign-in with set-up, re-entry, and sign out everywhere: every store call."""
    page = customer.enter_username(customer.start_login(), account.name)
    assert customer.enter_password(page, "not the password").status == 401
    assert first_login(customer, account).path == "/portal/"
    re_entry(customer)
    page = customer.submit(customer.get("/portal/"), "/portal/logout-everywhere")
    assert (page.status, page.path) == (200, "/"), page.text[:200]
    page = customer.start_login()
    assert page.path == "/auth/authorize" and page.soup.find("input", attrs={"name": "username"}) is not None
