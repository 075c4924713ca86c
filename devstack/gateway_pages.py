"""The pages nginx answers itself, in the product's layout and in each language.

nginx meets some errors before any service does: its rate limit (429), a service that is down
(502, 504), a body too large (413), an address it cannot read (400). Its answers are static files
in gateway/pages/, made here from services/common/templates/gateway_error.html and the catalogue
(so their strings have French like every other), with the services' own style.css beside them.
They are committed, as Kubernetes ships gateway/ as it is (gateway/kustomization.yaml); `make
gateway-pages` writes them, and tests/test_gateway_pages.py fails when they are not current.
The brand is left as BRAND_PLACEHOLDER, which nginx replaces with its GATEWAY_BRAND_NAME.
"""

import sys
from pathlib import Path

from services.common.i18n import LANGUAGES, current_language
from services.common.web import COMMON_DIR, Pages

ROOT = Path(__file__).resolve().parent.parent
PAGES_DIR = ROOT / "gateway" / "pages"
# Each page of gateway_error.html; nginx serves `<page>.<language>.html`.
PAGES = ("bad-request", "not-found", "too-large", "too-many", "unavailable")
BRAND_PLACEHOLDER = "@SSO_BRAND_NAME@"
# Where nginx serves the files from (gateway/nginx.conf.template, location /.gateway/).
STATIC_URL = "/.gateway"


def render_pages() -> dict[str, str]:
    """file name -> content, for every page in every language, and the stylesheet."""
    environment = Pages(COMMON_DIR / "templates", STATIC_URL, "gateway", brand=BRAND_PLACEHOLDER).environment
    template = environment.get_template("gateway_error.html")
    files = {"style.css": (COMMON_DIR / "static" / "style.css").read_text()}
    for language in LANGUAGES:
        token = current_language.set(language)
        try:
            for page in PAGES:
                html = template.render(
                    page=page,
                    lang=language,
                    brand=BRAND_PLACEHOLDER,
                    static_url=STATIC_URL,
                    language_links=[],
                    csrf_token="",
                )
                files[f"{page}.{language}.html"] = html + "\n"
        finally:
            current_language.reset(token)
    return files


def write_pages(directory: Path = PAGES_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = render_pages()
    for stale in directory.iterdir():
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, content in sorted(files.items()):
        (directory / name).write_text(content)
        written.append(directory / name)
    return written


def stale_pages(directory: Path = PAGES_DIR) -> list[str]:
    """The files of `directory` that differ from what the template, catalogue and stylesheet make now."""
    expected = render_pages()
    on_disk = {path.name: path.read_text() for path in directory.iterdir() if path.is_file()}
    return sorted(
        name for name in expected.keys() | on_disk.keys() if expected.get(name) != on_disk.get(name)
    )


def main(arguments: list[str]) -> int:
    # `--check` (make lint): fail when a change to style.css, a template or the catalogue was not
    # carried into gateway/pages, which Kubernetes ships as it is.
    if arguments[:1] == ["--check"]:
        stale = stale_pages()
        if stale:
            print(
                f"gateway/pages is not current, run `make gateway-pages`: {', '.join(stale)}", file=sys.stderr
            )
            return 1
        return 0
    for path in write_pages(Path(arguments[0]) if arguments else PAGES_DIR):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
