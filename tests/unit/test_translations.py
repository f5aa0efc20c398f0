"""Every UI string is translated into Spanish, Finnish and Italian, with the same placeholders.

The messages are extracted from the source right now (the same rules as
``babel.cfg``), so a new string that nobody translated fails this test, and
so does a translation that drops or renames a placeholder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "marketplace" / "translations"
LANGUAGES = ("es", "fi", "it")
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "_l": None,
    "lazy_gettext": None,
    "N_": None,
    "N_plural": (1, 2),  # marketplace/texts.py: a stored or raised text that takes a number
    "pgettext": ((1, "c"), 2),
}
PLACEHOLDER = re.compile(r"%\([a-zA-Z_]+\)[sd]|%[sd]")


@pytest.fixture(autouse=True)
def _clean_database():
    """Overrides the suite's autouse database fixture: catalogs need no app and no database."""
    yield


def _source_messages() -> set[tuple[str | None, str]]:
    """(context, msgid) of every message in the source: ``pgettext("pool status", "Open")`` is its own message."""
    method_map = [("marketplace/**.py", "python"), ("templates/**.html", "jinja2")]
    found = set()
    for _path, _line, message, _comments, context in extract_from_dir(
        str(ROOT), method_map=method_map, keywords={**KEYWORDS}
    ):
        found.add((context, message[0] if isinstance(message, tuple) else message))
    return {m for m in found if m[1]}


@pytest.fixture(scope="module")
def source_messages():
    return _source_messages()


def _catalog(language: str):
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=language)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_ui_string_is_translated(language, source_messages):
    catalog = _catalog(language)
    translated = {}
    for message in catalog:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, (list, tuple)) else message.id
        strings = message.string if isinstance(message.string, (list, tuple)) else (message.string,)
        if not message.fuzzy and all(strings):
            translated[(message.context, key)] = message
    missing = sorted(source_messages - set(translated))
    assert missing == [], f"{language}: {len(missing)} untranslated message(s), e.g. {missing[:5]}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_their_placeholders(language):
    problems = []
    for message in _catalog(language):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, (list, tuple)) else (message.id,)
        strings = message.string if isinstance(message.string, (list, tuple)) else (message.string,)
        want = set(PLACEHOLDER.findall(ids[-1]))
        for text in strings:
            got = set(PLACEHOLDER.findall(text or ""))
            if text and got != want and not (len(ids) > 1 and got <= want):
                problems.append((ids[0], sorted(want), sorted(got)))
    assert problems == [], f"{language}: placeholders differ: {problems[:5]}"


def test_catalog_languages_match_the_app():
    from marketplace.i18n import LANGUAGES as APP_LANGUAGES

    assert set(APP_LANGUAGES) == {"en", *LANGUAGES}
    for language in LANGUAGES:
        assert (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").exists()
