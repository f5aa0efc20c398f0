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
from functools import lru_cache
from pathlib import Path

from babel.dates import format_date as _babel_date
from babel.dates import format_datetime as _babel_datetime
from babel.numbers import format_decimal as _babel_decimal
from flask import g, has_app_context, has_request_context, request, session
from flask_babel import Babel, force_locale, get_locale, get_translations
from jinja2 import pass_eval_context
from markupsafe import Markup

from .money import MINOR_DIGITS
from .texts import Moment, Money, Msg, Rate

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
    return _locale_state()[1]


# A page asks for its catalog and its locale's name dozens of times, and Flask-Babel finds
# them anew each time (several context lookups and a Locale comparison). Both are kept in
# Flask-Babel's own per-request namespace beside the Locale they belong to, so a
# ``force_locale`` block (a new Locale there) gets its own.


def _locale_state() -> tuple:
    """``(Locale, its name, its translations)`` of the current request (or app context)."""
    ctx = g.get("_flask_babel")
    locale = getattr(ctx, "babel_locale", None)
    if locale is None:  # not chosen yet: let Flask-Babel choose (select_locale), then look again
        locale = get_locale()
        ctx = g.get("_flask_babel")
        if locale is None or ctx is None:
            return (None, DEFAULT_LOCALE, get_translations())
    state = getattr(ctx, "marketplace_locale", None)
    if state is None or state[0] is not locale:
        state = ctx.marketplace_locale = (locale, str(locale), get_translations())
    return state


def _catalog():
    """The current locale's translations (Flask-Babel's own object), for the templates' ``_()``."""
    if not has_app_context():
        return get_translations()
    return _locale_state()[2]


# Jinja's newstyle gettext: the translation is a format string (always, even without
# variables), escaped-then-formatted under autoescape.


@pass_eval_context
def _jinja_gettext(eval_ctx, __string: str, **variables) -> str:
    rv = _catalog().ugettext(__string)
    if eval_ctx.autoescape:
        rv = Markup(rv)
    return rv % variables


@pass_eval_context
def _jinja_ngettext(eval_ctx, __singular: str, __plural: str, __num: int, **variables) -> str:
    variables.setdefault("num", __num)
    rv = _catalog().ungettext(__singular, __plural, __num)
    if eval_ctx.autoescape:
        rv = Markup(rv)
    return rv % variables


@pass_eval_context
def _jinja_pgettext(eval_ctx, __string_ctx: str, __string: str, **variables) -> str:
    variables.setdefault("context", __string_ctx)
    rv = _catalog().upgettext(__string_ctx, __string)
    if eval_ctx.autoescape:
        rv = Markup(rv)
    return rv % variables


@pass_eval_context
def _jinja_npgettext(eval_ctx, __string_ctx: str, __singular: str, __plural: str, __num: int, **variables) -> str:
    variables.setdefault("context", __string_ctx)
    variables.setdefault("num", __num)
    rv = _catalog().unpgettext(__string_ctx, __singular, __plural, __num)
    if eval_ctx.autoescape:
        rv = Markup(rv)
    return rv % variables


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
    # Flask-Babel installs Jinja's "new style" gettext; these are the same functions (see
    # jinja2.ext._make_new_gettext) without its two extra layers of context calls per ``_()``.
    app.jinja_env.globals.update(
        _=_jinja_gettext,
        gettext=_jinja_gettext,
        ngettext=_jinja_ngettext,
        pgettext=_jinja_pgettext,
        npgettext=_jinja_npgettext,
    )
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
    app.jinja_env.globals["current_locale"] = current_locale
    app.jinja_env.filters["localize"] = localize


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


# Formatting is a pure function of (value, locale) and Babel's is slow (tens of microseconds a
# call, dozens of calls a page), so the texts are memoized: a page repeats the same numbers.
@lru_cache(maxsize=8192)
def _number_text(value: int, locale) -> str:
    return _babel_decimal(value, format="#,##0", locale=locale)


@lru_cache(maxsize=8192)
def _money_text(amount: int, currency: str, locale) -> str:
    value = Decimal(amount).scaleb(-MINOR_DIGITS)
    pattern = "#,##0." + "0" * MINOR_DIGITS
    text = _babel_decimal(value, format=pattern, locale=locale, decimal_quantization=False)
    return f"{text} {currency}".strip()


def format_number(value: int, locale: str | None = None) -> str:
    return _number_text(int(value), locale or current_locale())


def format_money(amount: int, currency: str = "", locale: str | None = None) -> str:
    """``123456, "EUR"`` -> ``"1,234.56 EUR"`` (en), ``"1.234,56 EUR"`` (es, it), ``"1 234,56 EUR"`` (fi)."""
    return _money_text(int(amount), currency, locale or current_locale())


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


# ---------------------------------------------------------------- stored and raised texts (texts.Msg)


def render_text(msg: Msg, locale: str | None = None) -> str:
    """A :class:`~marketplace.texts.Msg` in the reader's language, its money and moments formatted for it.

    English readers get ``str(msg)``, exactly the sentence the JSON API and the
    ``message`` columns keep. A translation that cannot be filled in (a broken
    placeholder) falls back to English rather than failing the page.
    """
    locale = locale or current_locale()
    if locale == DEFAULT_LOCALE or locale not in LANGUAGES:
        return str(msg)
    if has_request_context() and locale != current_locale():
        with force_locale(locale):
            return render_text(msg, locale)
    if not has_request_context():
        return str(msg)
    translations = get_translations()

    def translate(m: Msg) -> str:
        if m.plural is not None:
            return translations.ungettext(m.template, m.plural, m.params.get("num", 0))
        return translations.ugettext(m.template)

    def value(param):
        if isinstance(param, Money):
            return format_money(param.amount, param.currency, locale)
        if isinstance(param, Rate):
            return format_bps(param.bps, locale)
        if isinstance(param, Moment):
            return format_moment(param.value, locale)
        if isinstance(param, Msg):
            return render_text(param, locale)
        if isinstance(param, (list, tuple)):
            return ", ".join(str(value(p)) for p in param)
        return param

    try:
        return msg.render(translate, value)
    except (KeyError, ValueError, TypeError):
        logging.getLogger(__name__).warning("translation of %r does not fit its parameters", msg.template)
        return str(msg)


def localize(text, fallback: str | None = None) -> str:
    """Jinja ``|localize(fallback)``: a Msg (or one stored with ``Msg.to_json``) in the reader's language.

    Anything else -- an old row with no stored message, None -- shows ``fallback``
    (the English text kept beside it), else the value itself.
    """
    if isinstance(text, dict):
        text = Msg.from_json(text)
    if isinstance(text, Msg):
        return render_text(text)
    if fallback is not None:
        return fallback
    return "" if text is None else text


def localized_message(exc) -> str:
    """What a page shows for a DomainError: its Msg in the reader's language, else its message as raised."""
    msg = getattr(exc, "msg", None)
    if isinstance(msg, Msg):
        return render_text(msg)
    return getattr(exc, "message", None) or str(exc)


def localized_errors(source) -> dict[str, list[str]]:
    """A DomainError's per-field messages (or such a dict) in the reader's language, for the inputs of a page.

    Each Msg is translated (``.error_msgs`` keeps them; ``.errors`` is the
    English the JSON API gives); a plain string is shown as it is.
    """
    errors = getattr(source, "error_msgs", source) or {}
    shown: dict[str, list[str]] = {}
    for name, messages in errors.items():
        items = messages if isinstance(messages, (list, tuple)) else [messages]
        shown[name] = [render_text(m) if isinstance(m, Msg) else str(m) for m in items]
    return shown
