"""English and French: the language of each request, and every string for people in one catalogue.

The catalogue's source is `locale/<lang>/LC_MESSAGES/messages.po` (in the repository); `make`
compiles it to `messages.mo` (`make catalogues`, part of every target that runs the services,
and of the Dockerfile). Strings are looked up when they are shown, not when they are written:
`_()` gives a LazyText, so a message defined at import time still follows each request's
language. The language comes from the `?lang=` switch (which sets the `lang` cookie), else that
cookie, else the browser's Accept-Language, else English.
"""

import gettext
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
DEFAULT_LANGUAGE = "en"
# Each language by its own name, as the switch shows it.
LANGUAGES: Mapping[str, str] = {"en": "English", "fr": "Français"}
LANGUAGE_COOKIE = "lang"
LANGUAGE_PARAMETER = "lang"
LANGUAGE_COOKIE_MAX_AGE = 400 * 24 * 3600


class CatalogueMissing(RuntimeError):
    pass


def _load_catalogues() -> dict[str, gettext.NullTranslations]:
    catalogues: dict[str, gettext.NullTranslations] = {DEFAULT_LANGUAGE: gettext.NullTranslations()}
    for language in LANGUAGES:
        if language == DEFAULT_LANGUAGE:
            continue
        try:
            catalogues[language] = gettext.translation(DOMAIN, LOCALE_DIR, languages=[language])
        except FileNotFoundError as error:
            # A page in English where the customer asked for French is a broken install, not a
            # fallback: fail at start-up, where the operator sees it.
            raise CatalogueMissing(
                f"no compiled {language} catalogue in {LOCALE_DIR}: run `make catalogues`"
            ) from error
    return catalogues


CATALOGUES = _load_catalogues()
current_language: ContextVar[str] = ContextVar("current_language", default=DEFAULT_LANGUAGE)


def gettext_now(message: str) -> str:
    """`message` in the current request's language."""
    return CATALOGUES[current_language.get()].gettext(message)


def ngettext_now(singular: str, plural: str, n: int) -> str:
    return CATALOGUES[current_language.get()].ngettext(singular, plural, n)


class LazyText:
    """A string for people, translated each time it is shown, in that request's language."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __str__(self) -> str:
        return gettext_now(self.message)

    def __repr__(self) -> str:
        return f"LazyText({self.message!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyText):
            return self.message == other.message
        if isinstance(other, str):
            return str(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.message)

    def __mod__(self, values: Any) -> str:
        text: str = str(self) % values
        return text


Text = str | LazyText


def _(message: str) -> LazyText:
    """Marks a string for the catalogue; it is translated where it is shown."""
    return LazyText(message)


def negotiate(accept_language: str) -> str | None:
    """The best of our languages for an Accept-Language header (RFC 9110 12.5.4), or None."""
    best: tuple[float, int] | None = None
    chosen: str | None = None
    for position, item in enumerate(accept_language.split(",")[:32]):
        tag, _sep, parameters = item.strip().partition(";")
        language = tag.strip().split("-")[0].lower()
        quality = 1.0
        name, _eq, value = parameters.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
        if language not in LANGUAGES or not 0 < quality <= 1:
            continue
        # Higher quality wins; between equals, the one the browser named first.
        rank = (quality, -position)
        if best is None or rank > best:
            best, chosen = rank, language
    return chosen


def language_links(request: Request, fallback_url: str, *, here: bool = True) -> list[dict[str, str]]:
    """The switch: a link per other language, back to this page (a GET) or to `fallback_url`.

    here=False: to `fallback_url` from a GET too, for a page whose own address would not show it
    again but begin something anew."""
    if here and request.method == "GET":
        path = request.url.path
        query = [(k, v) for k, v in parse_qsl(request.url.query) if k != LANGUAGE_PARAMETER]
    else:  # a page answering a form: the form's own address would be a GET to a POST route
        path, query = fallback_url, []
    current = current_language.get()
    return [
        {"code": code, "name": name, "href": f"{path}?{urlencode([*query, (LANGUAGE_PARAMETER, code)])}"}
        for code, name in LANGUAGES.items()
        if code != current
    ]


def first_header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (as Request.headers.get gives it), or None."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def scope_cookies(scope: Scope) -> dict[str, str]:
    """The request's cookies, as Request.cookies reads them, without building a Request."""
    cookies: dict[str, str] = {}
    for key, value in scope["headers"]:
        if key == b"cookie":
            cookies.update(cookie_parser(value.decode("latin-1")))
    return cookies


class LanguageMiddleware:
    """Sets the request's language; `?lang=xx` on a GET also keeps it in the `lang` cookie."""

    def __init__(self, app: ASGIApp, secure_cookies: bool = False) -> None:
        self.app = app
        self.secure_cookies = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/internal/"):
            await self.app(scope, receive, send)
            return
        query_string = scope["query_string"]
        chosen = (
            QueryParams(query_string).get(LANGUAGE_PARAMETER)
            if query_string and scope["method"] == "GET"
            else None
        )
        if chosen not in LANGUAGES:
            chosen = None
        cookie = scope_cookies(scope).get(LANGUAGE_COOKIE)
        language = (
            chosen
            or (cookie if cookie in LANGUAGES else None)
            or negotiate(first_header(scope, b"accept-language") or "")
            or DEFAULT_LANGUAGE
        )
        token = current_language.set(language)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and chosen is not None and chosen != cookie:
                value = (
                    f"{LANGUAGE_COOKIE}={chosen}; Path=/; Max-Age={LANGUAGE_COOKIE_MAX_AGE}; "
                    "HttpOnly; SameSite=Lax" + ("; Secure" if self.secure_cookies else "")
                )
                message["headers"] = [*message.get("headers", ()), (b"set-cookie", value.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_cookie)
        finally:
            current_language.reset(token)
