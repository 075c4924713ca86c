"""nginx's own error pages (gateway/pages) are what the template and the catalogue make now."""

from devstack.gateway_pages import BRAND_PLACEHOLDER, PAGES, render_pages, stale_pages
from services.common.i18n import LANGUAGES


def test_the_committed_pages_are_current() -> None:
    stale = stale_pages()
    assert not stale, f"gateway/pages is not current: run `make gateway-pages` ({stale})"


def test_each_page_is_in_its_language_with_the_layout_and_the_brand_left_to_nginx() -> None:
    pages = render_pages()
    assert len(pages) == len(PAGES) * len(LANGUAGES) + 1  # and the stylesheet
    for language in LANGUAGES:
        for page in PAGES:
            html = pages[f"{page}.{language}.html"]
            assert f'<html lang="{language}">' in html
            assert '<link rel="stylesheet" href="/.gateway/style.css">' in html
            assert BRAND_PLACEHOLDER in html and '<header class="brand">' in html
    assert (
        "Trop de demandes" in pages["too-many.fr.html"] and "Too many requests" in pages["too-many.en.html"]
    )
    assert "La connexion est indisponible pour le moment." in pages["unavailable.fr.html"]
