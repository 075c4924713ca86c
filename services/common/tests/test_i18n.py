"""The language of a request: the switch, the cookie, Accept-Language; strings looked up late."""

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from services.common.i18n import (
    LANGUAGE_COOKIE,
    LanguageMiddleware,
    _,
    current_language,
    language_links,
    negotiate,
)

GREETING = _("Sign in")  # made at import time, like the module constants of the routes


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("fr-FR,fr;q=0.9,en;q=0.8", "fr"),
        ("en-GB,en;q=0.9,fr;q=0.8", "en"),
        ("de-DE,fr;q=0.5,en;q=0.4", "fr"),
        ("en;q=0.5,fr;q=0.9", "fr"),
        ("FR", "fr"),
        ("de,es", None),
        ("fr;q=0,en;q=0.1", "en"),
        ("fr;q=abc", None),
        ("", None),
    ],
)
def test_accept_language_picks_our_best_language(header: str, expected: str | None) -> None:
    assert negotiate(header) == expected


def test_a_string_made_at_import_time_follows_the_current_language() -> None:
    token = current_language.set("fr")
    try:
        assert str(GREETING) == "Connexion"
    finally:
        current_language.reset(token)
    assert str(GREETING) == "Sign in"


def _app() -> FastAPI:
    app = FastAPI()

    @app.api_route("/page", methods=["GET", "POST"])
    async def page(request: Request) -> PlainTextResponse:
        links = " ".join(link["href"] for link in language_links(request, "/home"))
        return PlainTextResponse(f"{current_language.get()} {GREETING} {links}")

    app.add_middleware(LanguageMiddleware)
    return app


async def _get(path: str, method: str = "GET", **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


async def test_accept_language_chooses_without_a_cookie() -> None:
    response = await _get("/page", headers={"accept-language": "fr-CA,fr;q=0.9"})
    assert response.text.startswith("fr Connexion ")
    assert LANGUAGE_COOKIE not in response.cookies


async def test_the_switch_sets_the_cookie_and_wins_over_the_browser() -> None:
    response = await _get("/page?x=1&lang=fr", headers={"accept-language": "en"})
    assert response.text.startswith("fr Connexion ")
    assert response.cookies[LANGUAGE_COOKIE] == "fr"
    # The switch back keeps the page's own query and replaces the language.
    assert response.text.endswith("/page?x=1&lang=en")


async def test_the_cookie_wins_over_accept_language() -> None:
    response = await _get("/page", headers={"accept-language": "en", "cookie": f"{LANGUAGE_COOKIE}=fr"})
    assert response.text.startswith("fr Connexion")


async def test_an_unknown_language_is_ignored() -> None:
    response = await _get("/page?lang=xx", headers={"cookie": f"{LANGUAGE_COOKIE}=zz"})
    assert response.text.startswith("en Sign in")
    assert LANGUAGE_COOKIE not in response.cookies


async def test_a_page_answering_a_form_switches_through_its_fallback_page() -> None:
    response = await _get("/page?lang=fr", method="POST", headers={"accept-language": "fr"})
    # A POST never sets the language from the query; the link leads to a page that can be shown.
    assert response.text == "fr Connexion /home?lang=en"
