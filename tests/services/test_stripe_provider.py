"""The Stripe provider with the real ``stripe`` library against ``localstripe``.

The localstripe fixture and the helpers that speak Stripe (signing events,
3-D Secure, test cards) are in tests/stripe_fixtures.py. Deposits, webhooks,
withdrawals, card pledges and reconciliation have their own modules
(test_stripe_*.py, test_payouts*.py, test_reconcile*.py); this one covers
the provider itself and the pending-deposit round trip.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.payments.models import Payment
from marketplace.payments.stripe_provider import StripeProvider, deposit_status, payout_status, refund_status
from marketplace.wallet import services as wallet

from ..helpers import make_member, token_for, wallet_of
from ..stripe_helpers import (
    WEBHOOK_SECRET,
    WEBHOOK_URL,
    authenticate,
    deposit_entries,
    external_postings,
    free_port,
    intent_event,
    only_payment,
    post_webhook,
    running_localstripe,
    signed,
    stripe_client,
    stripe_config,
    stripe_settings,
    three_d_secure_method,
)

pytest_plugins = ("tests.stripe_fixtures",)  # localstripe_url, stripe_app


def deposit_via_api(api, member, amount: int, payment_method: str | None = None, currency: str = "EUR", **kw):
    body = {"amount": amount, "currency": currency}
    if payment_method:
        body["payment_method"] = payment_method
    return api.post("/api/v1/wallet/deposits", token=token_for(member), json=body, **kw)


# --- mapping Stripe's states (pure) -------------------------------------------------


@pytest.mark.parametrize(
    ("intent_status", "expected"),
    [
        ("succeeded", "succeeded"),
        ("requires_action", "pending"),
        ("processing", "pending"),
        ("requires_payment_method", "failed"),
        ("requires_confirmation", "failed"),
        ("canceled", "failed"),
    ],
)
def test_intent_status_decides_the_deposit(intent_status, expected):
    assert deposit_status(intent_status) == expected


@pytest.mark.parametrize(
    ("stripe_status", "expected"),
    [
        ("paid", "succeeded"),
        ("pending", "pending"),
        ("in_transit", "pending"),
        ("failed", "failed"),
        ("canceled", "failed"),
    ],
)
def test_payout_status_decides_the_withdrawal(stripe_status, expected):
    assert payout_status(stripe_status) == expected


@pytest.mark.parametrize(
    ("stripe_status", "expected"),
    [("succeeded", "succeeded"), ("pending", "pending"), ("requires_action", "pending"), ("failed", "failed")],
)
def test_refund_status_decides_a_refund_part(stripe_status, expected):
    assert refund_status(stripe_status) == expected


def test_provider_is_built_from_the_config_of_each_call(stripe_app, localstripe_url):
    from marketplace.payments.providers import get_provider

    provider = get_provider()
    assert isinstance(provider, StripeProvider)
    assert (provider.api_key, provider.api_base) == ("sk_test_x", localstripe_url)
    with stripe_settings(stripe_app, STRIPE_API_KEY=""), pytest.raises(RuntimeError, match="STRIPE_API_KEY"):
        get_provider()


# --- deposits -----------------------------------------------------------------------


def test_card_deposit_succeeds_and_credits_the_wallet_once(stripe_app, api, client, localstripe_url):
    member = make_member()
    resp = deposit_via_api(api, member, 12_345, "pm_card_visa")
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == "succeeded"
    assert wallet_of(member.id)["balance"] == 12_345
    payment = only_payment()
    assert (payment.provider, payment.status, payment.amount) == ("stripe", "succeeded", 12_345)
    assert payment.entry_id is not None
    assert external_postings() == [12_345]  # external:stripe:EUR debited

    intent = stripe_client(localstripe_url).v1.payment_intents.retrieve(payment.provider_ref)
    assert (intent.status, intent.amount, intent.currency) == ("succeeded", 12_345, "eur")
    assert intent.metadata["member_id"] == str(member.id)
    from marketplace.payments.customers import stored_customer

    assert intent.customer == stored_customer(member.id) != ""

    # Stripe also sends payment_intent.succeeded for it (maybe twice): nothing more is credited.
    payload = intent_event(localstripe_url, payment.provider_ref, "payment_intent.succeeded")
    for _ in range(2):
        resp = post_webhook(client, payload, signed(payload))
        assert resp.status_code == 200
        assert resp.get_json()["status"] == "succeeded"
    assert wallet_of(member.id)["balance"] == 12_345
    assert deposit_entries() == 1


def test_deposit_without_payment_method_uses_the_test_card_in_test_mode(stripe_app, localstripe_url):
    member = make_member()
    payment = wallet.deposit(member.id, 500, "GBP")
    assert payment.status == "succeeded"
    intent = stripe_client(localstripe_url).v1.payment_intents.retrieve(payment.provider_ref)
    assert (intent.amount, intent.currency, intent.status) == (500, "gbp", "succeeded")
    assert wallet_of(member.id, "GBP")["balance"] == 500


def test_live_mode_deposit_needs_a_payment_method(stripe_app, api):
    member = make_member()
    with stripe_settings(stripe_app, STRIPE_API_KEY="sk_live_x"):
        resp = deposit_via_api(api, member, 1_000)
    assert resp.status_code == 422
    assert "payment_method" in resp.get_json()["errors"]
    assert db.session.execute(select(func.count(Payment.id))).scalar_one() == 0


def test_declined_card_fails_the_deposit_and_credits_nothing(stripe_app, api, localstripe_url):
    member = make_member()
    resp = deposit_via_api(api, member, 7_000, "pm_card_chargeCustomerFail")
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == "failed"
    assert resp.get_json()["failure_message"] == "Your card was declined."
    payment = only_payment()
    assert (payment.status, payment.entry_id) == ("failed", None)
    assert payment.settled_at is not None
    assert wallet_of(member.id)["balance"] == 0
    assert deposit_entries() == 0
    assert external_postings() == []
    intent = stripe_client(localstripe_url).v1.payment_intents.retrieve(payment.provider_ref)
    assert intent.status == "canceled"  # cancelled after the decline: it can never be charged later
    assert intent.last_payment_error.code == "card_declined"


def test_unknown_payment_method_is_422_and_records_nothing(stripe_app, api):
    member = make_member()
    resp = deposit_via_api(api, member, 1_000, "pm_does_not_exist")
    assert resp.status_code == 422
    assert resp.get_json()["reason"] == "validation_error"
    assert "payment_method" in resp.get_json()["errors"]
    assert db.session.execute(select(func.count(Payment.id))).scalar_one() == 0


def test_unreachable_stripe_is_503_and_records_nothing(stripe_app, api):
    member = make_member()
    with stripe_settings(stripe_app, STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}"):
        resp = deposit_via_api(api, member, 1_000, "pm_card_visa")
    assert resp.status_code == 503
    assert resp.get_json()["reason"] == "provider_unavailable"
    assert db.session.execute(select(func.count(Payment.id))).scalar_one() == 0
    assert wallet_of(member.id)["balance"] == 0


# --- pending deposits and the webhook ----------------------------------------------


def pending_deposit(api, url: str, amount: int = 4_200):
    member = make_member()
    resp = deposit_via_api(api, member, amount, three_d_secure_method(url))
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == "pending"
    payment = only_payment()
    assert payment.status == "pending"
    assert stripe_client(url).v1.payment_intents.retrieve(payment.provider_ref).status == "requires_action"
    return member, payment


def test_pending_deposit_is_credited_by_the_signed_webhook_exactly_once(stripe_app, api, client, localstripe_url):
    member, payment = pending_deposit(api, localstripe_url)
    assert wallet_of(member.id)["balance"] == 0
    assert deposit_entries() == 0

    assert authenticate(localstripe_url, payment.provider_ref, success=True)["status"] == "succeeded"
    payload = intent_event(localstripe_url, payment.provider_ref, "payment_intent.succeeded")
    resp = post_webhook(client, payload, signed(payload))
    assert resp.status_code == 200
    assert resp.get_json() == {"received": True, "handled": True, "payment_id": payment.id, "status": "succeeded"}
    assert wallet_of(member.id)["balance"] == 4_200
    assert external_postings() == [4_200]

    # Replays (same delivery, or re-signed later) credit nothing more.
    post_webhook(client, payload, signed(payload))
    resp = post_webhook(client, payload, signed(payload, timestamp=int(time.time()) + 1))
    assert resp.status_code == 200
    # A stray failure afterwards does not undo it.
    failed = intent_event(localstripe_url, payment.provider_ref, "payment_intent.payment_failed")
    assert post_webhook(client, failed, signed(failed)).get_json()["status"] == "succeeded"
    assert wallet_of(member.id)["balance"] == 4_200
    assert deposit_entries() == 1
    assert only_payment().status == "succeeded"


def test_failed_authentication_fails_the_pending_deposit(stripe_app, api, client, localstripe_url):
    member, payment = pending_deposit(api, localstripe_url)
    assert authenticate(localstripe_url, payment.provider_ref, success=False)["status"] == "requires_payment_method"
    payload = intent_event(localstripe_url, payment.provider_ref, "payment_intent.payment_failed")
    resp = post_webhook(client, payload, signed(payload))
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "failed"
    assert only_payment().status == "failed"
    assert only_payment().failure_message
    assert wallet_of(member.id)["balance"] == 0
    assert deposit_entries() == 0
    # Should Stripe still collect it later (the cardholder retried on Stripe's page), the money is there:
    # the deposit is credited then, once.
    late = intent_event(localstripe_url, payment.provider_ref, "payment_intent.succeeded", status="succeeded")
    assert post_webhook(client, late, signed(late)).get_json()["status"] == "succeeded"
    assert wallet_of(member.id)["balance"] == 4_200
    assert deposit_entries() == 1


def test_bad_signatures_are_400_and_change_nothing(stripe_app, api, client, localstripe_url):
    member, payment = pending_deposit(api, localstripe_url)
    authenticate(localstripe_url, payment.provider_ref, success=True)
    payload = intent_event(localstripe_url, payment.provider_ref, "payment_intent.succeeded")
    tampered = payload.replace(b'"amount": 4200', b'"amount": 4201')
    assert tampered != payload
    attempts = [
        signed(payload, secret="whsec_wrong"),
        {**signed(payload), "Stripe-Signature": "t=1,v1=" + "0" * 64},
        {"Content-Type": "application/json"},
        signed(payload, timestamp=int(time.time()) - 3600),  # outside Stripe's 5-minute tolerance
    ]
    for headers in attempts:
        resp = post_webhook(client, payload, headers)
        assert resp.status_code == 400, headers
        assert resp.get_json()["reason"] == "bad_signature"
    resp = post_webhook(client, tampered, signed(payload))
    assert resp.status_code == 400
    assert only_payment().status == "pending"
    assert wallet_of(member.id)["balance"] == 0
    # The genuine delivery still works afterwards.
    assert post_webhook(client, payload, signed(payload)).status_code == 200
    assert wallet_of(member.id)["balance"] == 4_200


def test_webhook_for_a_deposit_not_recorded_yet_records_and_credits_it(stripe_app, client):
    """A crash after Stripe charged, before our answer was recorded: the signed event alone credits the member."""
    member = make_member()
    ours = {"id": "pi_notyet", "object": "payment_intent", "amount": 100, "currency": "eur", "status": "succeeded"}
    ours["metadata"] = {"purpose": "wallet_deposit", "member_id": str(member.id)}
    payload = json.dumps({"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": ours}}).encode()
    resp = post_webhook(client, payload, signed(payload))
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "succeeded"
    payment = only_payment()
    assert (payment.member_id, payment.amount, payment.currency, payment.provider_ref) == (
        member.id,
        100,
        "EUR",
        "pi_notyet",
    )
    assert wallet_of(member.id)["balance"] == 100

    for name, metadata in [("pi_foreign", {}), ("pi_nobody", {"purpose": "wallet_deposit", "member_id": "999999"})]:
        foreign = {**ours, "id": name, "metadata": metadata}
        payload = json.dumps({"id": f"evt_{name}", "type": "payment_intent.succeeded", "data": {"object": foreign}})
        resp = post_webhook(client, payload.encode(), signed(payload.encode()))
        assert (resp.status_code, resp.get_json()["handled"]) == (200, False)
    assert db.session.execute(select(func.count(Payment.id))).scalar_one() == 1

    other = json.dumps({"id": "evt_3", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}).encode()
    assert post_webhook(client, other, signed(other)).get_json() == {"received": True, "handled": False}


def test_webhook_with_another_amount_is_not_applied(stripe_app, api, client, localstripe_url):
    member, payment = pending_deposit(api, localstripe_url)
    authenticate(localstripe_url, payment.provider_ref, success=True)
    payload = intent_event(localstripe_url, payment.provider_ref, "payment_intent.succeeded", amount=999_999)
    resp = post_webhook(client, payload, signed(payload))
    assert (resp.status_code, resp.get_json()["handled"]) == (200, False)
    assert only_payment().status == "pending"
    assert wallet_of(member.id)["balance"] == 0


def test_webhook_without_a_configured_secret_is_503(stripe_app, client):
    payload = b'{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {}}}'
    with stripe_settings(stripe_app, STRIPE_WEBHOOK_SECRET=""):
        assert post_webhook(client, payload, signed(payload)).status_code == 503


@pytest.mark.no_ledger_check  # checked at the end of the test, once the server thread is gone
def test_localstripe_delivers_a_webhook_that_the_app_accepts(app, api):
    """localstripe signs and POSTs its own payment_intent.succeeded to the app served on loopback."""
    from werkzeug.serving import make_server

    from ..helpers import assert_ledger_invariants

    with running_localstripe() as url, stripe_settings(app, **stripe_config(url)):
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            hook = {"url": f"http://127.0.0.1:{server.server_port}{WEBHOOK_URL}", "secret": WEBHOOK_SECRET}
            hook["events"] = ["payment_intent.succeeded"]
            request = urllib.request.Request(
                f"{url}/_config/webhooks/marketplace", data=json.dumps(hook).encode(), method="POST"
            )
            request.add_header("Content-Type", "application/json")
            urllib.request.urlopen(request, timeout=5).close()

            member, payment = pending_deposit(api, url, amount=3_300)
            member_id, intent_id = member.id, payment.provider_ref
            db.session.remove()
            authenticate(url, intent_id, success=True)
            deadline = time.monotonic() + 20
            while only_payment().status == "pending" and time.monotonic() < deadline:
                db.session.remove()
                time.sleep(0.2)
        finally:
            server.shutdown()
            thread.join(timeout=10)
    assert only_payment().status == "succeeded"
    assert wallet_of(member_id)["balance"] == 3_300
    assert deposit_entries() == 1
    db.session.remove()
    assert_ledger_invariants()


# --- withdrawals --------------------------------------------------------------------


def test_withdrawal_refunds_the_card_deposit(stripe_app, api, localstripe_url):
    member = make_member(funds={"EUR": 10_000})  # deposited through localstripe
    deposit = only_payment("deposit")
    resp = api.post("/api/v1/wallet/withdrawals", token=token_for(member), json={"amount": 2_500, "currency": "EUR"})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "succeeded"  # localstripe refunds at once
    assert [(p["method"], p["amount"], p["status"]) for p in body["parts"]] == [("refund", 2_500, "paid")]
    assert wallet_of(member.id)["balance"] == 7_500
    assert external_postings() == [10_000, -2_500]
    refunds = stripe_client(localstripe_url).v1.refunds.list(params={"limit": 100}).data
    mine = [r for r in refunds if r.payment_intent == deposit.provider_ref]
    assert [(r.amount, r.status, r.metadata["member_id"]) for r in mine] == [(2_500, "succeeded", str(member.id))]
