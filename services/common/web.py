"""What every browser-facing service shares: pages, the browser cookie, CSRF and security headers."""

import functools
import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .clock import random_token
from .errors import Forbidden
from .i18n import CATALOGUES, Text, current_language, language_links, ngettext_now, scope_cookies
from .i18n import _ as _  # re-exported: the pages' modules take `_` from here

COMMON_DIR = Path(__file__).parent
BROWSER_COOKIE = "browser"
BROWSER_COOKIE_MAX_AGE = 400 * 24 * 3600

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
SECURITY_HEADER_NAMES = frozenset(name for name, _value in SECURITY_HEADERS)


def browser_cookie_name(secure: bool) -> str:
    """`__Host-` over https: such a cookie is Secure, Path=/ and for this host only, so no
    sibling domain (and no plain-http page) can plant one."""
    return f"__Host-{BROWSER_COOKIE}" if secure else BROWSER_COOKIE


class BrowserIds:
    """Browser ids only auth issues: a random part and auth's HMAC of it. A value a client makes
    up, or plants in someone's browser, is not genuine: auth replaces it before binding a sign-in to it."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def _mac(self, value: str) -> str:
        return hmac.new(self.secret, value.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> str:
        value = random_token()
        return f"{value}.{self._mac(value)}"

    def genuine(self, browser_id: str) -> bool:
        value, dot, mac = browser_id.partition(".")
        return bool(dot) and len(value) == 43 and hmac.compare_digest(mac.encode(), self._mac(value).encode())


def browser_cookie(browser_id: str, secure: bool) -> str:
    return (
        f"{browser_cookie_name(secure)}={browser_id}; Path=/; Max-Age={BROWSER_COOKIE_MAX_AGE}; "
        "HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
    )


class BrowserMiddleware:
    """The browser id cookie: login steps and CSRF tokens are bound to it.

    With `issuer` (auth, where every sign-in begins and is bound), an id that is not genuine is
    replaced by a new one. Without (mfa, the portal), the id is read as it comes: those services
    bind nothing new to it (mfa checks the binding auth made), and their CSRF tokens are keyed
    with a secret of their own, so a made-up id earns no valid token there either.
    """

    def __init__(
        self, app: ASGIApp, csrf_secret: bytes, secure_cookies: bool = False, issuer: BrowserIds | None = None
    ) -> None:
        self.app = app
        self.csrf_secret = csrf_secret
        self.secure_cookies = secure_cookies
        self.issuer = issuer
        self.cookie_name = browser_cookie_name(secure_cookies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/internal/"):
            await self.app(scope, receive, send)
            return
        browser_id = scope_cookies(scope).get(self.cookie_name, "")
        if len(browser_id) > 128:
            browser_id = ""
        new_id = None
        if self.issuer is not None and not self.issuer.genuine(browser_id):
            browser_id = new_id = self.issuer.issue()
        state = scope.setdefault("state", {})
        state.update(browser_id=browser_id, csrf_secret=self.csrf_secret, browser_ids=self.issuer)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0] not in SECURITY_HEADER_NAMES]
                headers += SECURITY_HEADERS
                if new_id is not None:
                    headers.append((b"set-cookie", browser_cookie(new_id, self.secure_cookies).encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def rotate_browser_id(request: Request, response: Response, secure: bool) -> None:
    """A new id at sign-in (auth only): whatever was known of the old one is worth nothing after."""
    issuer: BrowserIds | None = getattr(request.state, "browser_ids", None)
    if issuer is None:
        raise RuntimeError("only the service that issues browser ids can rotate them")
    response.headers.append("set-cookie", browser_cookie(issuer.issue(), secure))


STEP_COOKIE = "login_step"

# The error codes whose page offers "Start again": a sign-in step token that expired or was
# spent, and a set-up whose QR expired. Both restart at the portal's Login, a new OIDC
# transaction: the portal's own transaction cookie lives no longer than the step token, so
# resending the old authorize request would only fail at /portal/callback.
STEP_EXPIRED = "step_expired"
SETUP_EXPIRED = "setup_expired"
START_AGAIN_CODES = frozenset({STEP_EXPIRED, SETUP_EXPIRED})
START_AGAIN_URL = "/portal/login"


def set_cookie(
    response: Response,
    name: str,
    value: str,
    *,
    secure: bool,
    path: str = "/",
    max_age: int | None = None,
) -> None:
    """Every cookie of ours: HttpOnly and SameSite=Lax, Secure behind TLS."""
    response.set_cookie(name, value, path=path, max_age=max_age, httponly=True, samesite="lax", secure=secure)


def delete_cookie(response: Response, name: str, *, secure: bool, path: str = "/") -> None:
    response.delete_cookie(name, path=path, httponly=True, samesite="lax", secure=secure)


def client_ip(request: Request) -> str:
    """The customer's address, as the gateway saw it (X-Real-IP, which the gateway always sets)."""
    forwarded = request.headers.get("x-real-ip", "")
    if forwarded and len(forwarded) <= 45:
        return forwarded
    return request.client.host if request.client else "unknown"


def user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:256]


def browser_id(request: Request) -> str:
    value: str = request.state.browser_id
    return value


def browser_binding(request: Request) -> str:
    """What a step token carries to say which browser it belongs to."""
    return hashlib.sha256(browser_id(request).encode()).hexdigest()


def csrf_token(request: Request) -> str:
    """HMAC of the browser id with the service's own secret: knowing (or planting) a browser id
    is not enough to make a valid token. No browser id, no token."""
    if not browser_id(request):
        return ""
    secret: bytes = request.state.csrf_secret
    return hmac.new(secret, browser_id(request).encode(), hashlib.sha256).hexdigest()


def check_csrf(request: Request, submitted: str | None) -> None:
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
    expected = csrf_token(request)
    if not submitted or not expected or not hmac.compare_digest(submitted.encode(), expected.encode()):
        raise Forbidden(
            _("This form has expired. Please go back and try again."),
            detail="missing or wrong CSRF token",
        )


def page_gettext(message: str, **variables: Any) -> Markup:
    """`_()` and `gettext()` in a template: what Jinja's i18n extension gives with newstyle=True
    and autoescape (the translation as Markup, %-formatted with the keywords, which are escaped),
    called directly instead of through its three `Context.call`s. Without keywords and without a
    `%`, formatting would give the same string: it is skipped."""
    text = _translated_markup(current_language.get(), message)
    return text % variables if variables or "%" in text else text


@functools.lru_cache(maxsize=4096)
def _translated_markup(language: str, message: str) -> Markup:
    return Markup(CATALOGUES[language].gettext(message))  # noqa: S704 (our catalogue, as Jinja's i18n trusts it)


def page_ngettext(singular: str, plural: str, num: int, **variables: Any) -> Markup:
    """`ngettext()` in a template, as Jinja's newstyle one: `num` is a keyword too."""
    variables.setdefault("num", num)
    text: Markup = Markup(ngettext_now(singular, plural, num)) % variables  # noqa: S704 (our catalogue)
    return text


class Pages:
    """Renders a service's templates, with the common base layout and gettext."""

    def __init__(
        self, templates_dir: Path, static_url: str, service_name: str, *, brand: str, home_url: str = "/"
    ) -> None:
        """brand: the name on every page; home_url: where the language switch leads from a page
        that answered a form."""
        self.static_url = static_url
        self.brand = brand
        self.home_url = home_url
        self.environment = jinja2.Environment(
            loader=jinja2.ChoiceLoader(
                [
                    jinja2.FileSystemLoader(templates_dir),
                    jinja2.FileSystemLoader(COMMON_DIR / "templates"),
                ]
            ),
            autoescape=True,
            extensions=["jinja2.ext.i18n"],
            undefined=jinja2.StrictUndefined,
            # Templates are read once per process, not stat-ed on every render: a change shows
            # after a restart (as a change to the code does). Kept in a plain dict (cache_size=-1),
            # not an LRU behind a lock: a service has a handful.
            auto_reload=False,
            cache_size=-1,
        )
        # Looked up at render time, in the language of the request being rendered.
        self.environment.newstyle_gettext = True  # type: ignore[attr-defined]
        self.environment.globals.update(_=page_gettext, gettext=page_gettext, ngettext=page_ngettext)
        self.service_name = service_name

    def render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """context may set language_links=[] for a page that cannot be shown twice."""
        if "language_links" not in context:  # not setdefault: its argument would be computed anyway
            context["language_links"] = language_links(request, self.home_url)
        html = self.environment.get_template(name).render(
            csrf_token=csrf_token(request) if hasattr(request.state, "browser_id") else "",
            static_url=self.static_url,
            lang=current_language.get(),
            brand=self.brand,
            **context,
        )
        return HTMLResponse(html, status_code=status_code)

    def error_page(self, request: Request, status_code: int, message: Text, code: str = "") -> HTMLResponse:
        start_again = code in START_AGAIN_CODES
        return self.render(
            request,
            "error.html",
            status_code=status_code,
            message=message,
            start_again_url=START_AGAIN_URL if start_again else None,
        )


LOCKED_UNTIL_UNLOCK = _(
    "Too many attempts: sign-in to this account is locked. Please contact customer support to unlock it."
)
LOCKED_FOR_A_WHILE = _("Too many attempts: sign-in to this account is paused. Please try again later.")


def lock_message(seconds: int, now: float) -> Markup:
    """What a customer who may learn of a lock is told (docs/security.md, "Locks"): how long to
    wait, and until when, as a <time> in UTC that local-time.js shows in the browser's own zone.

    seconds: the lock's wait, -1 until support unlocks it, 0 if unknown.
    """
    if seconds < 0:
        return escape(str(LOCKED_UNTIL_UNLOCK))
    if seconds == 0:
        return escape(str(LOCKED_FOR_A_WHILE))
    minutes = max(1, -(-seconds // 60))
    until = datetime.fromtimestamp(now + seconds, UTC)
    moment = Markup('<time datetime="{}">{}</time>').format(
        until.strftime("%Y-%m-%dT%H:%M:%SZ"), until.strftime("%H:%M UTC")
    )
    template = ngettext_now(
        "Too many attempts: sign-in to this account is paused. Try again in %(n)d minute, at %(time)s.",
        "Too many attempts: sign-in to this account is paused. Try again in %(n)d minutes, at %(time)s.",
        minutes,
    )
    return escape(template) % {"n": minutes, "time": moment}


def retry_after(seconds: int) -> dict[str, str]:
    """The Retry-After header of a locked answer, when the wait is known."""
    return {"retry-after": str(seconds)} if seconds > 0 else {}
