"""Languages: English, Spanish, Finnish and Italian (Flask-Babel).

The locale is the signed-in member's own setting, else what the visitor
chose with the language switch (kept in the session), else the best match
for the browser's ``Accept-Language``, else English. Numbers, money,
percentages and dates on pages are formatted for that locale with Babel;
amounts stay exact (Decimal built from integer minor units, never float).
The JSON API is not localized: machines get the same numbers everywhere.
"""

from __future__ import annotations

import logging
import os
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from babel.dates import format_date as _babel_date
from babel.dates import format_datetime as _babel_datetime
from babel.numbers import format_decimal as _babel_decimal
from flask import has_request_context, request, session
from flask_babel import Babel, get_locale

from .money import MINOR_DIGITS

LANGUAGES = {"en": "English", "es": "Español", "fi": "Suomi", "it": "Italiano"}
DEFAULT_LOCALE = "en"
SESSION_KEY = "locale"

babel = Babel()


def select_locale() -> str:
    if not has_request_context():
        return DEFAULT_LOCALE
    from flask_login import current_user

    chosen = getattr(current_user, "locale", None) if current_user and current_user.is_authenticated else None
    if chosen in LANGUAGES:
        return chosen
    chosen = session.get(SESSION_KEY)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT_LOCALE


def current_locale() -> str:
    if not has_request_context():
        return DEFAULT_LOCALE
    locale = get_locale()
    return str(locale) if locale is not None else DEFAULT_LOCALE


def compile_catalogs(directory: Path) -> list[Path]:
    """Compile each ``<lang>/LC_MESSAGES/messages.po`` whose ``.mo`` is missing or older (returns those written).

    The ``.po`` files are the source of truth in git; the binary ``.mo`` files
    are built here on start-up (and by ``make``), so a fresh clone just works.
    A read-only install that ships its ``.mo`` files is left alone.
    """
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po_path in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        try:
            with po_path.open("rb") as po_file:
                catalog = read_po(po_file, locale=po_path.parts[-3])
            tmp_path = mo_path.with_suffix(f".{os.getpid()}.tmp")
            with tmp_path.open("wb") as mo_file:
                write_mo(mo_file, catalog, use_fuzzy=False)
            tmp_path.replace(mo_path)  # atomic: several workers may start at once
            written.append(mo_path)
        except OSError:
            logging.getLogger(__name__).warning("could not compile %s; pages stay in English", po_path)
    return written


def init_app(app) -> None:
    compile_catalogs(Path(app.root_path) / "translations")
    babel.init_app(app, locale_selector=select_locale, default_translation_directories="translations")
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
    app.jinja_env.globals["current_locale"] = current_locale


# ---------------------------------------------------------------- reading what people type


def uses_decimal_comma(locale: str | None = None) -> bool:
    from babel.numbers import get_decimal_symbol

    return get_decimal_symbol(locale or current_locale()) == ","


def localized_input(text: str | None) -> str | None:
    """A number as typed on a page in the reader's language -> the dot-decimal form the parsers read.

    Spanish, Finnish and Italian readers write ``1.234,56`` or ``1 234,56``; the
    dot-decimal form (``1234.56``) is accepted in every language too.
    """
    if text is None or not uses_decimal_comma():
        return text
    from .money import normalize_decimal_comma

    return normalize_decimal_comma(text)


# ---------------------------------------------------------------- formatting (exact)


def format_number(value: int, locale: str | None = None) -> str:
    return _babel_decimal(int(value), format="#,##0", locale=locale or current_locale())


def format_money(amount: int, currency: str = "", locale: str | None = None) -> str:
    """``123456, "EUR"`` -> ``"1,234.56 EUR"`` (en), ``"1.234,56 EUR"`` (es, it), ``"1 234,56 EUR"`` (fi)."""
    value = Decimal(int(amount)).scaleb(-MINOR_DIGITS)
    pattern = "#,##0." + "0" * MINOR_DIGITS
    text = _babel_decimal(value, format=pattern, locale=locale or current_locale(), decimal_quantization=False)
    return f"{text} {currency}".strip()


def format_bps(rate_bps: int, locale: str | None = None) -> str:
    """``725`` -> ``"7.25 %"`` (en) / ``"7,25 %"`` (es, fi, it): basis points as a percentage, exact."""
    value = Decimal(int(rate_bps)).scaleb(-2)
    return _babel_decimal(value, format="#,##0.00", locale=locale or current_locale()) + "\u00a0%"


def format_day(value: date | None, locale: str | None = None) -> str:
    if value is None:
        return "—"
    return _babel_date(value, format="medium", locale=locale or current_locale())


def format_moment(value: datetime | None, locale: str | None = None) -> str:
    if value is None:
        return "—"
    return _babel_datetime(value, format="medium", tzinfo=None, locale=locale or current_locale()) + " UTC"
