"""texts.Msg: English for the API and the ``message`` columns, the reader's language on pages."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

from marketplace import texts
from marketplace.errors import InvalidState, NotFound
from marketplace.i18n import format_moment, localize, localized_message, render_text
from marketplace.texts import N_, Moment, Money, Msg, N_plural, Rate, by_status

LOAN_FUNDED = N_plural(
    "Your loan of %(amount)s is funded by %(num)d part(s) and was paid into your wallet less a fee of %(fee)s.",
    "Your loan of %(amount)s is funded by %(num)d part(s) and was paid into your wallet less a fee of %(fee)s.",
)


def funded(parts: int = 2) -> Msg:
    return Msg.plural_of(LOAN_FUNDED, parts, amount=Money(123_456, "EUR"), fee=Money(1_235, "EUR"))


def test_str_is_the_english_sentence():
    assert str(funded()) == (
        "Your loan of 1,234.56 EUR is funded by 2 part(s) and was paid into your wallet less a fee of 12.35 EUR."
    )
    assert str(Msg(N_("Your part of %(amount)s at %(rate)s was lent out."), amount=Money(5), rate=Rate(725))) == (
        "Your part of 0.05 at 7.25 % was lent out."
    )
    moment = Moment(datetime(2026, 11, 23, 13, 30, 59, tzinfo=UTC))
    assert str(Msg(N_("Renew after %(when)s."), when=moment)) == "Renew after 2026-11-23 13:30 UTC."


def test_plural_forms_nesting_and_lists():
    forms = N_plural("%(num)d loan repaid (%(points)s)", "%(num)d loans repaid (%(points)s)")
    one, two = Msg.plural_of(forms, 1, points="+5"), Msg.plural_of(forms, 2, points="+10")
    assert (str(one), str(two)) == ("1 loan repaid (+5)", "2 loans repaid (+10)")
    history = Msg(N_("Repayment history: %(parts)s; %(points)s points in all."), parts=[one, two], points="+15")
    assert str(history) == "Repayment history: 1 loan repaid (+5), 2 loans repaid (+10); +15 points in all."
    outer = Msg(N_("Could not clear: %(why)s."), why=Msg(N_("no pledges")))
    assert str(outer) == "Could not clear: no pledges."


def test_json_round_trip_keeps_every_kind_of_parameter():
    msg = Msg(
        N_("%(a)s %(b)s %(c)s %(d)s %(e)s %(f)s %(g)s"),
        a=Money(-1_999, "SEK"),
        b=Rate(1_050),
        c=Moment(datetime(2027, 1, 2, 3, 4, tzinfo=UTC)),
        d=funded(1),
        e=[Msg(N_("no pledges")), Msg(N_("no pledges"))],
        f=42,
        g="Solar “panels” & <b>",
    )
    again = Msg.from_json(msg.to_json())
    assert again == msg and str(again) == str(msg)
    assert Msg.from_json(funded().to_json()).plural == LOAN_FUNDED[1]


@pytest.mark.parametrize("stored", [None, "text", {}, {"t": "x"}, {"t": "x", "p": {"a": {"$unknown": 1}}}, []])
def test_anything_not_stored_by_to_json_reads_as_none(stored):
    assert Msg.from_json(stored) is None


def test_by_status_picks_the_whole_sentence_or_the_english_fallback():
    table = {"repaid": N_("The loan is repaid; nothing is owed.")}
    assert by_status(table, "repaid", "unused") == Msg(table["repaid"])
    assert by_status(table, "weird", "The loan is weird; nothing is owed.") == "The loan is weird; nothing is owed."


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        (
            "es",
            "Tu préstamo de 1.234,56 EUR está financiado por 2 partes y se ingresó en tu monedero, "
            "menos una comisión de 12,35 EUR.",
        ),
        (
            "fi",
            "Lainasi 1\u00a0234,56 EUR rahoitettiin 2 osuudella, ja se maksettiin lompakkoosi vähennettynä "
            "maksulla 12,35 EUR.",
        ),
        (
            "it",
            "Il tuo prestito di 1.234,56 EUR è finanziato da 2 quote ed è stato accreditato nel tuo portafoglio "
            "al netto di una commissione di 12,35 EUR.",
        ),
    ],
)
def test_rendered_in_the_readers_language_with_its_money_format(app, locale, expected):
    with app.test_request_context("/"):
        assert render_text(funded(), locale) == expected
        assert render_text(funded(), "en") == str(funded())


def test_rates_moments_plurals_and_nested_texts_are_localized(app):
    with app.test_request_context("/"):
        part = Msg(
            N_("Your part of %(amount)s in loan %(loan)s at %(rate)s was lent out."),
            amount=Money(30_000, "EUR"),
            loan=7,
            rate=Rate(725),
        )
        assert render_text(part, "es") == "Tu parte de 300,00 EUR en el préstamo 7 al 7,25\u00a0% se ha prestado."
        forms = N_plural("%(num)d loan repaid (%(points)s)", "%(num)d loans repaid (%(points)s)")
        history = Msg(
            N_("Repayment history: %(parts)s; %(points)s points in all."),
            parts=[Msg.plural_of(forms, 1, points="+5"), Msg.plural_of(forms, 3, points="+15")],
            points="+20",
        )
        assert render_text(history, "it") == (
            "Storico dei rimborsi: 1 prestito rimborsato (+5), 3 prestiti rimborsati (+15); +20 punti in tutto."
        )
        share = Msg(N_("just over %(percent)s %%"), percent=35)
        assert render_text(share, "fi") == "hieman yli 35 %" and str(share) == "just over 35 %"
        moment = datetime(2027, 3, 4, 5, 6, tzinfo=UTC)
        assert render_text(Msg("%(when)s", when=Moment(moment)), "fi") == format_moment(moment, "fi")
        assert render_text(Msg(N_("Your card authorization expired.")), "es") == "La autorización de tu tarjeta caducó."


def test_a_translation_that_does_not_fit_falls_back_to_english(app, monkeypatch):
    class Broken:
        def ugettext(self, message):
            return "%(missing)s"

        def ungettext(self, singular, plural, num):
            return "%(missing)s"

    monkeypatch.setattr("marketplace.i18n.get_translations", lambda: Broken())
    with app.test_request_context("/"):
        assert render_text(funded(), "es") == str(funded())


def test_domain_errors_keep_english_for_the_api_and_localize_for_pages(app):
    exc = InvalidState(Msg(N_("The loan is repaid; nothing is owed.")))
    assert exc.message == str(exc) == "The loan is repaid; nothing is owed."
    plain = InvalidState("Already translated elsewhere.")
    assert plain.msg is None and plain.message == "Already translated elsewhere."
    default = NotFound()
    assert default.message == "Not found." and default.msg == Msg("Not found.")
    with app.test_request_context("/"):
        from flask_babel import force_locale

        with force_locale("es"):
            assert exc.localized() == localized_message(exc) == "El préstamo está reembolsado; no se debe nada."
            assert default.localized() == "No encontrado."
            assert plain.localized() == "Already translated elsewhere."
        assert exc.localized() == exc.message  # English readers


def test_localize_filter_reads_msgs_and_stored_json_and_falls_back(app):
    with app.test_request_context("/"):
        from flask_babel import force_locale

        with force_locale("it"):
            assert localize(Msg(N_("no pledges"))) == "nessun impegno"
            assert localize(Msg(N_("no pledges")).to_json(), "fallback") == "nessun impegno"
            assert localize(None, "English kept beside it") == "English kept beside it"
            assert localize("plain") == "plain" and localize(None) == ""


def test_texts_is_pure():
    tree = ast.parse(Path(texts.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported <= {"__future__", "collections.abc", "dataclasses", "datetime", "typing", "money"}
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, float)]
