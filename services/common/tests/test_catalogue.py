"""Every string a customer can read is in the French catalogue, and the compiled one is current."""

import re
from pathlib import Path

from babel.messages.catalog import Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from services.common.i18n import CATALOGUES, LOCALE_DIR

ROOT = Path(__file__).resolve().parents[3]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "ngettext_now": (1, 2)}
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]")


def _strings_in_the_code() -> dict[str, tuple[str, ...]]:
    """msgid -> the msgid and plural as written, from every template and module (babel.cfg)."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    found: dict[str, tuple[str, ...]] = {}
    for filename, _line, message, _comments, _context in extract_from_dir(
        ROOT / "services", method_map, options_map, keywords=KEYWORDS
    ):
        if "/tests/" in f"/{filename}":
            continue
        forms = message if isinstance(message, tuple) else (message,)
        found[forms[0]] = forms
    return found


def _french() -> dict[str, Message]:
    with (LOCALE_DIR / "fr" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalogue = read_po(source, locale="fr")
    return {_msgid(message): message for message in catalogue}


def _msgid(message: Message) -> str:
    return str(message.id[0]) if isinstance(message.id, tuple | list) else str(message.id)


def _translations(message: Message) -> tuple[str, ...]:
    """The translation (each plural form); an empty one as ""."""
    string = message.string
    return tuple(str(form) for form in string) if isinstance(string, tuple | list) else (string or "",)


def test_the_extraction_sees_templates_and_code() -> None:
    strings = _strings_in_the_code()
    # One from a template, one from a route, one plural: the extraction itself cannot go blind.
    assert "Sign in to the customer portal" in strings
    assert "Invalid username or password." in strings
    assert any(len(forms) == 2 for forms in strings.values())


def test_every_string_for_people_has_a_french_translation() -> None:
    french = _french()
    missing = [
        msgid
        for msgid in _strings_in_the_code()
        if msgid not in french or "fuzzy" in french[msgid].flags or not all(_translations(french[msgid]))
    ]
    assert not missing, (
        "not in French yet (run `make translations`, then translate them in "
        f"services/common/locale/fr/LC_MESSAGES/messages.po): {missing}"
    )


def test_translations_keep_every_placeholder() -> None:
    french = _french()
    wrong = []
    for msgid, forms in _strings_in_the_code().items():
        message = french.get(msgid)
        if message is None:
            continue
        expected = set(PLACEHOLDER.findall(forms[-1]))
        wrong += [msgid for text in _translations(message) if set(PLACEHOLDER.findall(text)) != expected]
    assert not wrong, f"translations whose placeholders differ from the English: {wrong}"


def test_the_compiled_catalogue_matches_its_source() -> None:
    stale = [
        msgid
        for msgid, message in _french().items()
        if msgid and not isinstance(message.id, tuple) and CATALOGUES["fr"].gettext(msgid) != message.string
    ]
    assert not stale, f"messages.mo is older than messages.po (run `make catalogues`): {stale}"
