"""``flask reconcile-stripe`` and /ops/reconciliation: the ledger against Stripe's own objects (localstripe)."""

from __future__ import annotations

import pytest

from marketplace.db import transaction
from marketplace.ledger import services as ledger
from marketplace.payments import payouts
from marketplace.payments.reconcile import reconcile_configured
from marketplace.wallet import services as wallet

from ..helpers import assert_ledger_invariants, login, make_member
from ..stripe_helpers import deliver, event_payload, stripe_client

pytest_plugins = ("tests.stripe_fixtures",)  # localstripe_url, stripe_app


def run_cli(app):
    result = app.test_cli_runner().invoke(args=["reconcile-stripe"])
    return result.exit_code, result.output


def busy_day(client, url: str):
    """Deposits (one declined), a withdrawal refunded to a card, a manual payout Stripe confirms."""
    alice, bob = make_member(funds={"EUR": 10_000}), make_member(funds={"EUR": 2_000, "GBP": 500})
    wallet.deposit(alice.id, 300, "EUR", "pm_card_chargeCustomerFail")  # declined: nothing either side
    wallet.withdraw(alice.id, 2_500, "EUR")  # refunded to her card
    ledger.transfer(
        "test_transfer", ledger.wallet_account(alice.id, "EUR"), ledger.wallet_account(bob.id, "EUR"), 1_000
    )
    from marketplace.extensions import db

    db.session.commit()
    payment = wallet.withdraw(bob.id, 3_000, "EUR")  # 2,000 refunded, 1,000 queued for an operator
    queued = [p for p in payouts.parts_of(payment.id) if p.status == "queued"][0]
    operator = make_member("operator")
    part = payouts.approve_payout(queued.id, operator.id)
    # The bank takes it: localstripe never moves a payout on by itself, so the test sets its state (as Stripe
    # would) and delivers Stripe's payout.paid event.
    payout = stripe_client(url).v1.payouts.update(part.provider_ref, params={"status": "paid"}).to_dict()
    deliver(client, event_payload("payout.paid", payout))
    return alice, bob


def test_a_clean_ledger_reconciles(stripe_app, client, localstripe_url):
    busy_day(client, localstripe_url)
    report = reconcile_configured()
    assert report.differences == []
    assert (report.intents, report.refunds, report.payouts) == (4, 2, 1)
    assert report.currencies["EUR"] == {"ledger_balance": 6_500, "accounted": 6_500}
    code, output = run_cli(stripe_app)
    assert code == 0, output
    assert "reconcile-stripe: OK" in output
    assert_ledger_invariants()


def test_every_planted_difference_is_listed_and_fails_the_command(stripe_app, client, localstripe_url):
    alice, bob = busy_day(client, localstripe_url)
    stripe = stripe_client(localstripe_url)
    # 1. someone refunds one of Alice's deposits in Stripe's dashboard, behind the ledger's back
    deposit = wallet.recent_withdrawals(alice.id)[0]
    refunded_intent = payouts.parts_of(deposit.id)[0].source_ref
    stripe.v1.refunds.create(params={"payment_intent": refunded_intent, "amount": 111})
    # 2. a payment reaches Stripe that the ledger never recorded
    stray = stripe.v1.payment_intents.create(
        params={"amount": 4_242, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True}
    )
    # 3. a card hold nobody tracks
    hold = stripe.v1.payment_intents.create(
        params={
            "amount": 999,
            "currency": "eur",
            "payment_method": "pm_card_visa",
            "capture_method": "manual",
            "confirm": True,
            "metadata": {"purpose": "pool_pledge"},
        }
    )
    # 4. a ledger entry that moves "Stripe money" with no Stripe object behind it
    with transaction():
        ledger.post_entry(
            "adjustment",
            [(ledger.external_account("stripe", "EUR"), 5_000), (ledger.wallet_account(bob.id, "EUR"), -5_000)],
            memo="planted",
        )

    report = reconcile_configured()
    found = {(d.kind, d.reference): (d.ledger, d.stripe) for d in report.differences}
    assert found == {
        ("payment_intent", refunded_intent): (10_000 - 2_500, 10_000 - 2_500 - 111),
        ("payment_intent", stray.id): (0, 4_242),
        ("authorization", hold.id): (None, 999),
        ("ledger", "external:stripe:EUR"): (6_500 + 5_000, 6_500),
    }
    code, output = run_cli(stripe_app)
    assert code == 1
    assert "reconcile-stripe: 4 difference(s)" in output
    assert f"DIFFERENCE: payment_intent {stray.id} (EUR): ledger 0, Stripe 4242" in output

    operator = make_member("operator")
    assert login(client, operator.email).status_code == 302
    page = client.get("/ops/reconciliation")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "4 difference(s)" in html
    for _, reference in found:
        assert f"<code>{reference}</code>" in html
    assert_ledger_invariants()


def test_the_page_says_clean_and_the_command_refuses_without_stripe(app, client):
    operator = make_member("operator")
    assert login(client, operator.email).status_code == 302
    html = client.get("/ops/reconciliation").get_data(as_text=True)
    assert "Payments do not go through Stripe here" in html
    code, output = run_cli(app)
    assert code == 2 and "STRIPE_API_KEY" in output
    assert_ledger_invariants()


@pytest.mark.usefixtures("stripe_app")
def test_the_page_shows_clean_when_stripe_agrees(client):
    operator = make_member("operator")
    make_member(funds={"EUR": 1_234})
    assert login(client, operator.email).status_code == 302
    html = client.get("/ops/reconciliation").get_data(as_text=True)
    assert "The ledger and Stripe agree." in html
    assert "Checked 1 PaymentIntent(s)" in html
    assert_ledger_invariants()
