"""Languages: how the locale is chosen, the switch on every page, locale formatting of numbers and dates."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from marketplace.accounts.models import Member
from marketplace.extensions import db
from marketplace.i18n import LANGUAGES, format_bps, format_day, format_money, format_number
from tests.helpers import csrf_token, login, make_member


@pytest.mark.parametrize(
    ("locale", "money", "rate", "number"),
    [
        ("en", "1,234,567.89 EUR", "7.25\u00a0%", "12,345"),
        ("es", "1.234.567,89 EUR", "7,25\u00a0%", "12.345"),
        ("fi", "1\u00a0234\u00a0567,89 EUR", "7,25\u00a0%", "12\u00a0345"),
        ("it", "1.234.567,89 EUR", "7,25\u00a0%", "12.345"),
    ],
)
def test_numbers_money_and_rates_follow_the_locale_exactly(app, locale, money, rate, number):
    assert format_money(123_456_789, "EUR", locale=locale) == money
    assert format_bps(725, locale=locale) == rate
    assert format_number(12_345, locale=locale) == number
    assert format_money(-5, "EUR", locale=locale).endswith("0,05 EUR" if locale != "en" else "0.05 EUR")
    assert format_money(10**12, locale=locale)  # the largest amount formats without float rounding
    assert format_money(999_999_999_999, locale=locale).replace("\u00a0", "").replace(".", "").replace(",", "") == (
        "999999999999"
    )


def test_dates_follow_the_locale(app):
    day = date(2027, 3, 4)
    assert format_day(day, locale="en") == "Mar 4, 2027"
    assert "2027" in format_day(day, locale="fi") and "4.3.2027" == format_day(day, locale="fi")
    assert "mar" in format_day(day, locale="es").lower() and "mar" in format_day(day, locale="it").lower()


def test_accept_language_chooses_the_page_language(client):
    page = client.get("/", headers={"Accept-Language": "fi-FI,fi;q=0.9,en;q=0.5"})
    assert '<html lang="fi">' in page.get_data(as_text=True)
    page = client.get("/", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert '<html lang="en">' in page.get_data(as_text=True)


def test_the_switch_is_on_every_page_and_remembered(client):
    for path in ("/", "/login", "/signup", "/pools"):
        html = client.get(path).get_data(as_text=True)
        assert 'action="/language"' in html and 'for="language-select"' in html
        for code in LANGUAGES:
            assert f'value="{code}"' in html
    token = csrf_token(client.get("/").get_data(as_text=True))
    response = client.post("/language", data={"locale": "it", "next": "/pools", "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith("/pools")
    assert '<html lang="it">' in client.get("/pools", headers={"Accept-Language": "es"}).get_data(as_text=True)


def test_a_members_setting_wins_over_the_browser(client):
    member = make_member()
    login(client, member.email)
    token = csrf_token(client.get("/").get_data(as_text=True))
    client.post("/language", data={"locale": "es", "next": "/", "csrf_token": token})
    assert db.session.get(Member, member.id).locale == "es"
    assert '<html lang="es">' in client.get("/", headers={"Accept-Language": "fi"}).get_data(as_text=True)


def test_the_switch_refuses_bad_input_and_foreign_redirects(client):
    token = csrf_token(client.get("/").get_data(as_text=True))
    assert client.post("/language", data={"locale": "de", "csrf_token": token}).status_code == 400
    assert client.post("/language", data={"locale": "es"}).status_code == 400  # no CSRF token
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = client.post("/language", data={"locale": "es", "next": target, "csrf_token": token})
        assert response.status_code == 303 and response.headers["Location"] in ("/", "http://localhost/")


def test_moments_on_pages_are_localized(app):
    from marketplace.i18n import format_moment

    moment = datetime(2027, 3, 4, 15, 30, tzinfo=UTC)
    assert format_moment(moment, locale="fi").endswith("UTC") and "4.3.2027" in format_moment(moment, locale="fi")


@pytest.mark.parametrize(
    ("locale", "expected"),
    [("es", "Iniciar sesión"), ("it", "Accedi"), ("fi", "Kirjaudu sisään")],
)
def test_pages_are_served_in_the_chosen_language(client, locale, expected):
    from marketplace.i18n import babel  # noqa: F401  (catalogs compiled at start-up)

    html = client.get("/login", headers={"Accept-Language": locale}).get_data(as_text=True)
    assert f'<html lang="{locale}">' in html
    assert expected in html
    assert "Sign in" not in html.replace('lang="en"', "")


def test_numbers_typed_with_a_decimal_comma_are_understood(client):
    from marketplace.lending import amortization

    member = make_member()
    login(client, member.email)
    query = {"amount": "1.000,00", "term_months": "12", "max_rate": "7,25", "currency": "EUR"}
    spanish = client.get("/borrow/preview", query_string=query, headers={"Accept-Language": "es"})
    assert spanish.status_code == 200, spanish.get_data(as_text=True)
    assert spanish.get_json()["monthly_payment"] == amortization.monthly_payment(100_000, 725, 12)
    english = client.get(
        "/borrow/preview",
        query_string={**query, "amount": "1,000.00", "max_rate": "7.25"},
        headers={"Accept-Language": "en"},
    )
    assert english.get_json()["monthly_payment"] == spanish.get_json()["monthly_payment"]
