"""Pages' own gettext for templates gives exactly what Jinja's i18n extension gives (newstyle, autoescape)."""

from pathlib import Path
from typing import Any

import jinja2
import pytest

from services.common.i18n import LANGUAGES, current_language, gettext_now, ngettext_now
from services.common.web import COMMON_DIR, Pages, lock_message

SERVICES = COMMON_DIR.parent
RESTART_URL = "/auth/authorize?client_id=portal&state=a%26b&nonce=n"
LOCK = lock_message(300, 1_700_000_000.0)  # Markup, with a <time>
PAGES: list[tuple[str, str, dict[str, Any]]] = [
    ("portal", "landing.html", {"signed_out_everywhere": True}),
    ("portal", "home.html", {"username": "alice<&>'\""}),
    ("auth", "username.html", {"error": None}),
    (
        "auth",
        "password.html",
        {"error": LOCK, "local_time": True, "login_name": "al<i>ce", "restart_url": RESTART_URL},
    ),
    ("mfa", "code.html", {"error": None, "local_time": False}),
    ("auth", "continue.html", {"continue_url": RESTART_URL, "recovery_codes_left": 1}),
    ("auth", "continue.html", {"continue_url": RESTART_URL, "recovery_codes_left": None}),
    ("auth", "error.html", {"message": "Expired <now>", "start_again_url": "/portal/login"}),
]
SNIPPETS = [
    '{{ _("100%% sure") }}',
    '{{ _("%(brand)s sign-in", brand="<b>") }}',
    '{{ gettext("Continue") }} {{ _("Sign in") }}',
    '{{ ngettext("%(num)d of 10 left", "%(num)d of 10 left", 3) }}',
    "{% trans n=2 %}{{ n }} apples{% endtrans %}",
    "{% trans count=2 %}one apple{% pluralize %}{{ count }} apples{% endtrans %}",
]


def _jinja_i18n(pages: Pages) -> jinja2.Environment:
    """The same templates, with gettext as Jinja's i18n extension installs it."""
    environment = jinja2.Environment(
        loader=pages.environment.loader,
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
    )
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=gettext_now, ngettext=ngettext_now, newstyle=True
    )
    return environment


def _context(**values: Any) -> dict[str, Any]:
    return {"csrf_token": "c" * 64, "static_url": "/s", "brand": "Bank & Co", "language_links": [], **values}


@pytest.mark.parametrize("language", list(LANGUAGES))
@pytest.mark.parametrize(("service", "name", "values"), PAGES)
def test_a_page_renders_as_with_jinjas_own_gettext(
    language: str, service: str, name: str, values: dict[str, Any]
) -> None:
    pages = Pages(SERVICES / service / "templates", "/s", service, brand="Bank & Co")
    token = current_language.set(language)
    try:
        context = _context(lang=language, **values)
        ours = pages.environment.get_template(name).render(context)
        assert ours == _jinja_i18n(pages).get_template(name).render(context)
    finally:
        current_language.reset(token)


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_gettext_calls_render_as_with_jinjas_own_gettext(language: str) -> None:
    pages = Pages(Path(__file__).parent, "/s", "test", brand="Bank")
    reference = _jinja_i18n(pages)
    token = current_language.set(language)
    try:
        for source in SNIPPETS:
            assert pages.environment.from_string(source).render() == reference.from_string(source).render()
    finally:
        current_language.reset(token)
