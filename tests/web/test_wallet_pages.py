"""The wallet page: balances, deposit and withdrawal forms, history (CSRF on)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.ledger.models import JournalEntry
from marketplace.payments.models import Payment
from marketplace.wallet import services as wallet
from tests.helpers import csrf_token, login, make_member, wallet_of
from tests.web.test_accounts_pages import SKIP_LINK, IsolatedClient  # noqa: F401


@pytest.fixture
def client(app):
    app.test_client_class = IsolatedClient
    try:
        yield app.test_client()
    finally:
        app.test_client_class = None


def _fresh_wallet(member_id: int, currency: str = "EUR") -> dict:
    db.session.rollback()  # the page wrote in its own session: forget what this one cached
    return wallet_of(member_id, currency)


def _counts() -> tuple[int, int]:
    db.session.rollback()
    payments = db.session.execute(select(func.count(Payment.id))).scalar_one()
    entries = db.session.execute(select(func.count(JournalEntry.id))).scalar_one()
    return payments, entries


def _signed_in_member(client, **kwargs):
    member = make_member(**kwargs)
    assert login(client, member.email).status_code == 302
    return member


def _post(client, action: str, amount: str, currency: str = "EUR"):
    prefix = "deposit" if action == "deposit" else "withdraw"
    token = csrf_token(client.get("/wallet").get_data(as_text=True))
    return client.post(
        f"/wallet/{action}",
        data={f"{prefix}-amount": amount, f"{prefix}-currency": currency, "csrf_token": token},
    )


def _field_error(html: str, field_id: str) -> str:
    match = re.search(rf'<div class="field-error" id="{field_id}-error" role="alert">(.*?)</div>', html, re.S)
    assert match, f"no error shown for {field_id}"
    input_tag = re.search(rf"<(?:input|select|textarea)[^>]*\bid=\"{field_id}\"[^>]*>", html).group(0)
    assert f"{field_id}-error" in re.search(r'aria-describedby="([^"]*)"', input_tag).group(1).split()
    return match.group(1)


def _history_rows(html: str) -> list[str]:
    body = re.search(r"<tbody>(.*?)</tbody>", html, re.S)
    return re.findall(r"<tr>.*?</tr>", body.group(1), re.S) if body else []


def test_wallet_requires_login(client):
    r = client.get("/wallet")
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/login?next=")
    token = csrf_token(client.get("/login").get_data(as_text=True))
    r = client.post("/wallet/deposit", data={"deposit-amount": "10", "deposit-currency": "EUR", "csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    assert _counts() == (0, 0)


def test_wallet_shows_balances_held_and_available(client):
    member = _signed_in_member(client, funds={"EUR": 123_456, "GBP": 7_05})
    from marketplace.ledger import services as ledger

    ledger.place_hold(ledger.wallet_account(member.id, "EUR"), 20_000, reference="test hold")
    db.session.commit()
    r = client.get("/wallet")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert '<span class="stat-value" id="balance-EUR">1,234.56 EUR</span>' in html
    assert '<span class="stat-value" id="held-EUR">200.00 EUR</span>' in html
    assert '<span class="stat-value" id="available-EUR">1,034.56 EUR</span>' in html
    assert '<span class="stat-value" id="available-GBP">7.05 GBP</span>' in html
    assert SKIP_LINK in html
    # the currency select offers exactly the configured currencies
    assert re.findall(r'<option[^>]*value="([A-Z]{3})"', html)[:3] == ["EUR", "GBP", "USD"]
    assert '<label for="deposit-amount">' in html and '<label for="withdraw-amount">' in html


def test_empty_wallet_has_helpful_empty_states(client):
    _signed_in_member(client)
    html = client.get("/wallet").get_data(as_text=True)
    assert "Your wallet is empty." in html
    assert "No movements yet." in html
    assert "<tbody>" not in html


def test_deposit_through_the_form_changes_the_balance_exactly(client):
    member = _signed_in_member(client, funds={"EUR": 1_000})
    r = _post(client, "deposit", "12.34")
    assert r.status_code == 302 and r.headers["Location"] == "/wallet"
    assert _fresh_wallet(member.id)["balance"] == 2_234
    html = client.get("/wallet").get_data(as_text=True)
    assert "Deposited 12.34 EUR." in html
    rows = _history_rows(html)
    assert len(rows) == 2
    assert "+12.34 EUR" in rows[0] and "22.34 EUR" in rows[0] and "Deposit" in rows[0]
    r = _post(client, "deposit", "1,000.5", "USD")
    assert r.status_code == 302
    assert _fresh_wallet(member.id, "USD")["balance"] == 100_050
    assert _fresh_wallet(member.id)["balance"] == 2_234


def test_withdraw_through_the_form_changes_the_balance_exactly(client):
    member = _signed_in_member(client, funds={"EUR": 10_000})
    r = _post(client, "withdraw", "25.01")
    assert r.status_code == 302 and r.headers["Location"] == "/wallet"
    assert _fresh_wallet(member.id) == {"currency": "EUR", "balance": 7_499, "held": 0, "available": 7_499}
    html = client.get("/wallet").get_data(as_text=True)
    assert "Withdrew 25.01 EUR." in html
    first = _history_rows(html)[0]
    assert "\u221225.01 EUR" in first and "74.99 EUR" in first and "Withdrawal" in first
    # the whole available balance can be withdrawn, to the cent
    assert _post(client, "withdraw", "74.99").status_code == 302
    assert _fresh_wallet(member.id)["balance"] == 0


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "more than zero"),
        ("0.00", "more than zero"),
        ("-5", "more than zero"),
        ("1.234", "at most two decimal places"),
        ("abc", "as a number"),
        ("1e3", "as a number"),
        ("NaN", "as a number"),
        ("12,34", "as a number"),
        ("", "Enter an amount"),
        ("   ", "Enter an amount"),
        ("10000000000.01", "too large"),
        ("9" * 60, "as a number"),
    ],
)
@pytest.mark.parametrize("action", ["deposit", "withdraw"])
def test_bad_amounts_show_an_error_and_write_nothing(client, action, amount, message):
    member = _signed_in_member(client, funds={"EUR": 5_000})
    before = _counts()
    r = _post(client, action, amount)
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert message in _field_error(html, f"{action}-amount")
    assert _counts() == before
    assert _fresh_wallet(member.id)["balance"] == 5_000


def test_largest_amount_is_accepted(client):
    member = _signed_in_member(client)
    assert _post(client, "deposit", "10,000,000,000.00").status_code == 302
    assert _fresh_wallet(member.id)["balance"] == 10**12


def test_unknown_currency_is_rejected(client):
    member = _signed_in_member(client, funds={"EUR": 5_000})
    before = _counts()
    r = _post(client, "deposit", "10", "XXX")
    assert r.status_code == 422
    assert "Not a valid choice" in _field_error(r.get_data(as_text=True), "deposit-currency")
    assert _counts() == before
    assert _fresh_wallet(member.id)["balance"] == 5_000


def test_insufficient_funds_is_a_clear_message_and_writes_nothing(client):
    member = _signed_in_member(client, funds={"EUR": 1_000})
    from marketplace.ledger import services as ledger

    ledger.place_hold(ledger.wallet_account(member.id, "EUR"), 300, reference="test hold")
    db.session.commit()
    before = _counts()
    r = _post(client, "withdraw", "7.01")
    assert r.status_code == 409
    error = _field_error(r.get_data(as_text=True), "withdraw-amount")
    assert "Not enough money available" in error and "7.00 EUR" in error
    assert _counts() == before
    assert _fresh_wallet(member.id) == {"currency": "EUR", "balance": 1_000, "held": 300, "available": 700}
    # a currency the member never used has nothing available
    r = _post(client, "withdraw", "1", "GBP")
    assert r.status_code == 409
    assert "0.00 GBP" in _field_error(r.get_data(as_text=True), "withdraw-amount")
    assert _counts() == before


def test_wallet_forms_need_csrf(client):
    member = _signed_in_member(client, funds={"EUR": 1_000})
    for action, prefix in (("deposit", "deposit"), ("withdraw", "withdraw")):
        r = client.post(f"/wallet/{action}", data={f"{prefix}-amount": "1", f"{prefix}-currency": "EUR"})
        assert r.status_code == 400
    assert _fresh_wallet(member.id)["balance"] == 1_000


def test_history_is_paginated_25_per_page(client):
    member = _signed_in_member(client)
    for cents in range(1, 31):
        wallet.deposit(member.id, cents, "EUR")
    html = client.get("/wallet").get_data(as_text=True)
    rows = _history_rows(html)
    assert len(rows) == 25
    assert "+0.30 EUR" in rows[0]  # newest first
    assert "Showing 1–25 of 30" in html
    assert 'href="/wallet?page=2"' in html
    page2 = client.get("/wallet?page=2").get_data(as_text=True)
    rows2 = _history_rows(page2)
    assert len(rows2) == 5
    assert "+0.01 EUR" in rows2[-1] and "0.01 EUR" in rows2[-1]
    assert (
        'href="/wallet?page=1"' in page2 and 'aria-current="page"><span class="visually-hidden">Page </span>2' in page2
    )
    # nonsense or out-of-range pages fall back to a real page instead of an error
    assert len(_history_rows(client.get("/wallet?page=abc").get_data(as_text=True))) == 25
    assert len(_history_rows(client.get("/wallet?page=-3").get_data(as_text=True))) == 25
    assert len(_history_rows(client.get("/wallet?page=999").get_data(as_text=True))) == 5
    assert len(_history_rows(client.get("/wallet?page=99999999999999999999").get_data(as_text=True))) == 25


def test_home_page_shows_a_signed_in_members_wallet_summary(client):
    html = client.get("/").get_data(as_text=True)
    assert "Your wallet," not in html
    _signed_in_member(client, funds={"EUR": 4_200}, name="Wanda Wallet")
    html = client.get("/").get_data(as_text=True)
    assert "Your wallet, Wanda Wallet" in html
    assert "Available EUR" in html and "42.00 EUR" in html
