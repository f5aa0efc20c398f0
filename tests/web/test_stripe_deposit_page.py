"""The deposit page: a card chosen on the page, through Stripe.js (localstripe's stand-in) and localstripe.

The page loads Stripe.js from ``STRIPE_JS_URL`` (here localstripe's bundled
stand-in) and our script, which asks Stripe.js for a card token and posts
it. The test does what the stand-in does in a browser (``POST /v1/tokens``
with the publishable key, ``_authenticate`` for 3-D Secure) and posts the
form as the script would.
"""

from __future__ import annotations

import re
import urllib.request

import pytest

from marketplace.extensions import db

from ..helpers import assert_ledger_invariants, csrf_token, login, make_member, wallet_of
from ..stripe_helpers import (
    THREE_D_SECURE_CARD,
    authenticate,
    browser_card_token,
    deliver,
    intent_event,
    only_payment,
    payment_count,
    stripe_client,
)
from .test_accounts_pages import IsolatedClient

pytest_plugins = ("tests.stripe_fixtures",)  # localstripe_url, stripe_app


@pytest.fixture
def client(app):
    app.test_client_class = IsolatedClient
    try:
        yield app.test_client()
    finally:
        app.test_client_class = None


def _signed_in(client):
    member = make_member()
    assert login(client, member.email).status_code == 302
    return member


def _post(client, amount: str, **fields):
    page = client.get("/wallet/deposit").get_data(as_text=True)
    data = {
        "deposit-amount": amount,
        "deposit-currency": "EUR",
        "deposit-page": "deposit",
        "csrf_token": csrf_token(page),
    }
    data.update({f"deposit-{k}": v for k, v in fields.items()})
    return client.post("/wallet/deposit", data=data)


def _fresh_balance(member_id: int) -> int:
    db.session.rollback()
    return wallet_of(member_id)["balance"]


def test_sandbox_deposit_page_needs_no_card_form(client):
    member = _signed_in(client)
    resp = client.get("/wallet/deposit")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "js.stripe.com" not in html and "card-element" not in html
    assert "script-src 'self';" in resp.headers["Content-Security-Policy"]
    assert _post(client, "12.50").status_code == 302
    assert _fresh_balance(member.id) == 1_250
    assert_ledger_invariants()


def test_new_card_through_stripe_js_then_the_saved_card(stripe_app, client, localstripe_url):
    member = _signed_in(client)
    resp = client.get("/wallet/deposit")
    html = resp.get_data(as_text=True)
    js_url = f"{localstripe_url}/js.stripe.com/v3/"
    assert f'<script src="{js_url}"></script>' in html
    assert 'data-publishable-key="pk_test_x"' in html
    assert '<script src="/wallet/stripe-payment.js" defer></script>' in html
    policy = resp.headers["Content-Security-Policy"]
    assert f"script-src 'self' {localstripe_url};" in policy and f"connect-src 'self' {localstripe_url}" in policy
    # localstripe really serves the stand-in the page loads, and our script is served too
    with urllib.request.urlopen(js_url, timeout=5) as stand_in:
        assert b"createToken" in stand_in.read()
    script = client.get("/wallet/stripe-payment.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert "stripe.createToken(card)" in script.get_data(as_text=True)

    token = browser_card_token(localstripe_url)  # what stripe.createToken(card) does in the browser
    resp = _post(client, "40.00", payment_method="new", card_token=token)
    assert resp.status_code == 302 and resp.headers["Location"] == "/wallet"
    assert _fresh_balance(member.id) == 4_000
    first = only_payment()
    assert first.payment_method.startswith("card_")

    html = client.get("/wallet/deposit").get_data(as_text=True)
    assert "Visa ending in 4242" in html
    saved = re.search(r'name="deposit-payment_method" value="(card_[A-Za-z0-9]+)" checked', html).group(1)
    assert saved == first.payment_method
    assert _post(client, "2.00", payment_method=saved).status_code == 302
    assert _fresh_balance(member.id) == 4_200
    intents = [i for i in stripe_client(localstripe_url).v1.payment_intents.list(params={"limit": 10}).data]
    assert sorted((i.amount, i.payment_method, i.status) for i in intents) == [
        (200, saved, "succeeded"),
        (4_000, saved, "succeeded"),
    ]
    assert_ledger_invariants()


def test_card_choice_errors_are_shown_on_the_page_and_write_nothing(stripe_app, client, localstripe_url):
    member = _signed_in(client)
    cases = [
        ({"payment_method": "new"}, "Enter your card details"),  # the script did not run
        ({"payment_method": "card_someone_elses"}, "Choose one of your saved cards."),
        ({"payment_method": "<script>"}, "Choose a card."),
    ]
    for fields, message in cases:
        resp = _post(client, "5.00", **fields)
        assert resp.status_code == 422
        html = resp.get_data(as_text=True)
        assert message in html
        assert "<h1>Deposit</h1>" in html
    assert payment_count() == 0
    assert _fresh_balance(member.id) == 0
    assert_ledger_invariants()


def test_declined_card_is_a_clear_message(stripe_app, client, localstripe_url):
    member = _signed_in(client)
    token = browser_card_token(localstripe_url, "4000000000000341")  # declined when charged
    resp = _post(client, "9.99", payment_method="new", card_token=token)
    assert resp.status_code == 302
    html = client.get("/wallet").get_data(as_text=True)
    assert "did not go through: Your card was declined. Nothing was charged." in html
    assert _fresh_balance(member.id) == 0
    assert_ledger_invariants()


def test_three_d_secure_deposit_is_confirmed_on_our_page_then_credited_by_the_webhook(
    stripe_app, client, localstripe_url
):
    member = _signed_in(client)
    token = browser_card_token(localstripe_url, THREE_D_SECURE_CARD)
    resp = _post(client, "30.00", payment_method="new", card_token=token)
    payment = only_payment()
    assert resp.status_code == 302
    assert resp.headers["Location"] == f"/wallet/deposits/{payment.id}/authenticate"
    page = client.get(resp.headers["Location"])
    html = page.get_data(as_text=True)
    secret = stripe_client(localstripe_url).v1.payment_intents.retrieve(payment.provider_ref).client_secret
    assert f'data-client-secret="{secret}"' in html
    assert localstripe_url in page.headers["Content-Security-Policy"]
    assert _fresh_balance(member.id) == 0
    authenticate(localstripe_url, payment.provider_ref, success=True)  # stripe.confirmCardPayment(secret)
    deliver(client, intent_event(localstripe_url, payment.provider_ref, "payment_intent.succeeded"))
    assert _fresh_balance(member.id) == 3_000
    assert client.get(f"/wallet/deposits/{payment.id}/authenticate").status_code == 302  # nothing left to do
    other, other_client = make_member(), stripe_app.test_client()
    assert login(other_client, other.email).status_code == 302
    assert other_client.get(f"/wallet/deposits/{payment.id}/authenticate").status_code == 404
    assert_ledger_invariants()


def test_card_holds_are_listed_and_can_be_renewed_or_moved_to_the_wallet(stripe_app, client, localstripe_url):
    from datetime import timedelta

    from marketplace.clock import now
    from marketplace.payments import authorizations
    from marketplace.pools import services as pools
    from marketplace.pools.models import Pledge

    member = _signed_in(client)
    organizer = make_member()
    pool = pools.create_pool(
        organizer.id,
        title="Solar panels",
        description="",
        unit="panel",
        currency="EUR",
        min_volume=10,
        deadline=now() + timedelta(days=10),
    )
    first = pools.place_pledge(pool.id, member.id, quantity=2, max_unit_price=1_500, funding="card")
    second = pools.place_pledge(pool.id, member.id, quantity=1, max_unit_price=900, funding="card")
    auth1, auth2 = (authorizations.latest_for_pledge(p.id) for p in (first, second))
    html = client.get("/wallet").get_data(as_text=True)
    assert f'id="card-hold-{auth1.id}"' in html and "30.00 EUR" in html and "before the pool closes" in html
    token = csrf_token(html)

    resp = client.post(f"/wallet/card-authorizations/{auth1.id}/reauthorize", data={"csrf_token": token})
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(type(auth1), auth1.id).status == "canceled"
    assert authorizations.latest_for_pledge(first.id).status == "authorized"

    resp = client.post(f"/wallet/card-authorizations/{auth2.id}/switch", data={"csrf_token": token})
    assert "does not cover this pledge" in client.get("/wallet").get_data(as_text=True)  # empty wallet
    from marketplace.wallet import services as wallet

    wallet.deposit(member.id, 5_000, "EUR")
    client.post(f"/wallet/card-authorizations/{auth2.id}/switch", data={"csrf_token": token})
    db.session.expire_all()
    assert db.session.get(Pledge, second.id).funding == "wallet"
    assert wallet_of(member.id)["held"] == 900
    assert client.post(f"/wallet/card-authorizations/{auth2.id}/switch", data={}).status_code == 400  # CSRF
    assert_ledger_invariants()


def test_a_card_token_without_stripe_is_refused_cleanly(client):
    member = _signed_in(client)
    resp = _post(client, "5.00", payment_method="new", card_token="tok_abc")
    assert resp.status_code == 422
    assert "This payment provider takes no card tokens." in resp.get_data(as_text=True)
    assert payment_count() == 0
    assert _fresh_balance(member.id) == 0
    assert_ledger_invariants()
