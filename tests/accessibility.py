"""axe-core (from npm, `make test` installs it) run on a page in Chromium: serious or critical fails."""

import json
from functools import cache
from pathlib import Path

import pytest
from playwright.sync_api import Page

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
FAILING_IMPACTS = ("serious", "critical")


@cache
def _axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `make test` (it runs npm ci)")
    return AXE.read_text()


def assert_accessible(page: Page) -> None:
    """Runs axe on the page as it is now. It is evaluated over the DevTools protocol, which the
    page's Content-Security-Policy (script-src 'self') does not govern, so the CSP stays on."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source())
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    failing = [
        {
            "rule": violation["id"],
            "impact": violation["impact"],
            "help": violation["help"],
            "nodes": [node["target"] for node in violation["nodes"]][:5],
        }
        for violation in results["violations"]
        if violation["impact"] in FAILING_IMPACTS
    ]
    assert not failing, f"axe on {page.url}:\n{json.dumps(failing, indent=2)}"
    # axe looked at something: an empty or broken page would pass vacuously otherwise.
    assert results["passes"] or results["incomplete"], f"axe checked nothing on {page.url}"
