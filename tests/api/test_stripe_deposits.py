"""Card deposits through Stripe (localstripe): credited exactly once, whoever learns of the payment first."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from marketplace.extensions import db
from marketplace.payments import deposits
from marketplace.payments.customers import stored_customer
from marketplace.payments.models import StripeCustomer
from marketplace.payments.providers import ProviderUnavailable
from marketplace.payments.stripe_provider import StripeProvider

from ..helpers import assert_error, assert_ledger_invariants, make_member, token_for, wallet_of
from ..stripe_helpers import (
    IdempotentTransport,
    deliver,
    deposit_entries,
    external_postings,
    intent_event,
    intents_of,
    only_payment,
    payment_count,
    stripe_client,
    stripe_transport,
)

pytest_plugins = ("tests.stripe_fixtures",)  # localstripe_url, stripe_app


def deposit(api, member, amount: int, payment_method: str | None = "pm_card_visa", key: str | None = None):
    body = {"amount": amount, "currency": "EUR"}
    if payment_method:
        body["payment_method"] = payment_method
    headers = {"Idempotency-Key": key} if key else None
    return api.post("/api/v1/wallet/deposits", body, token=token_for(member), headers=headers)


class OwnContextClient(FlaskClient):
    """A client whose requests run in their own app context (own session and connection), like another worker."""

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


def test_deposit_succeeds_with_one_customer_per_member(stripe_app, api, localstripe_url):
    member = make_member()
    first = deposit(api, member, 12_345)
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["status"] == "succeeded"
    second = deposit(api, member, 655)
    assert second.get_json()["status"] == "succeeded"
    assert wallet_of(member.id)["balance"] == 13_000
    assert deposit_entries() == 2
    assert external_postings() == [12_345, 655]

    customer = stored_customer(member.id)
    assert customer.startswith("cus_")
    assert db.session.query(StripeCustomer).count() == 1
    intents = intents_of(localstripe_url, member.id)
    assert sorted(i["amount"] for i in intents) == [655, 12_345]
    assert {i["customer"] for i in intents} == {customer}
    assert {i["metadata"]["purpose"] for i in intents} == {"wallet_deposit"}
    found = stripe_client(localstripe_url).v1.customers.retrieve(customer)
    assert found.metadata["member_id"] == str(member.id)
    assert_ledger_invariants()


def test_declined_card_is_a_clear_failure_and_credits_nothing(stripe_app, api, localstripe_url):
    member = make_member()
    resp = deposit(api, member, 7_000, "pm_card_chargeCustomerFail")
    assert resp.status_code == 201
    body = resp.get_json()
    assert (body["status"], body["failure_message"]) == ("failed", "Your card was declined.")
    assert wallet_of(member.id)["balance"] == 0
    assert deposit_entries() == 0
    assert external_postings() == []
    (intent,) = intents_of(localstripe_url, member.id)
    assert intent["status"] == "canceled"  # can never be charged later
    assert_ledger_invariants()


def test_unknown_card_is_422_and_records_nothing(stripe_app, api):
    member = make_member()
    assert_error(deposit(api, member, 1_000, "pm_nope"), 422, "validation_error", "payment_method")
    assert payment_count() == 0
    assert_ledger_invariants()


def test_idempotent_retry_is_one_payment_intent_and_one_credit(stripe_app, api, localstripe_url):
    member = make_member()
    with stripe_transport(IdempotentTransport()) as transport:
        first = deposit(api, member, 4_000, key="dep-1")
        again = deposit(api, member, 4_000, key="dep-1")
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(intents_of(localstripe_url, member.id)) == 1
    assert wallet_of(member.id)["balance"] == 4_000
    assert deposit_entries() == 1
    # Our key went to Stripe as its Idempotency-Key for the PaymentIntent.
    creates = [
        key
        for method, path, key in transport.calls
        if (method, path.rsplit("/v1/", 1)[1]) == ("POST", "payment_intents")
    ]
    assert creates == [f"marketplace-deposit-{member.id}-dep-1"]
    assert_ledger_invariants()


def test_retry_after_a_lost_answer_reuses_the_stripe_payment(stripe_app, api, localstripe_url, monkeypatch):
    """Stripe charged, then we failed before recording it: the client's retry with the same key gets the
    same PaymentIntent back (Stripe's idempotency, which IdempotentTransport plays for localstripe)."""
    member = make_member()
    real = deposits.lock_or_create_deposit
    calls = {"n": 0}

    def crash_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ProviderUnavailable("lost the database after Stripe answered")
        return real(*args, **kwargs)

    monkeypatch.setattr(deposits, "lock_or_create_deposit", crash_once)
    with stripe_transport(IdempotentTransport()):
        lost = deposit(api, member, 2_500, key="dep-lost")
        assert_error(lost, 503, "provider_unavailable")
        assert payment_count() == 0
        retry = deposit(api, member, 2_500, key="dep-lost")
    assert retry.status_code == 201, retry.get_json()
    assert retry.get_json()["status"] == "succeeded"
    (intent,) = intents_of(localstripe_url, member.id)
    assert (intent["status"], intent["amount"]) == ("succeeded", 2_500)
    assert only_payment().provider_ref == intent["id"]
    assert wallet_of(member.id)["balance"] == 2_500
    assert deposit_entries() == 1
    assert_ledger_invariants()


def test_webhook_after_the_api_answer_credits_nothing_more(stripe_app, api, client, localstripe_url):
    member = make_member()
    resp = deposit(api, member, 3_000)
    assert resp.get_json()["status"] == "succeeded"
    payment = only_payment()
    answer = deliver(client, intent_event(localstripe_url, payment.provider_ref, "payment_intent.succeeded"))
    assert answer.status_code == 200
    assert answer.get_json() == {"received": True, "handled": True, "payment_id": payment.id, "status": "succeeded"}
    assert wallet_of(member.id)["balance"] == 3_000
    assert deposit_entries() == 1
    assert_ledger_invariants()


def test_webhook_before_the_api_answer_credits_once(stripe_app, api, localstripe_url, monkeypatch):
    """Stripe's event overtakes our own answer: the webhook records and credits the deposit, then the API
    path finds that row and credits nothing more."""
    member = make_member()
    deposit(api, member, 100)  # the member's Stripe Customer exists (committed) from here on
    stripe_app.test_client_class = OwnContextClient
    webhook_client = stripe_app.test_client()
    stripe_app.test_client_class = None
    real_collect = StripeProvider.collect
    seen = {}

    def collect_then_webhook(self, **kwargs):
        result = real_collect(self, **kwargs)
        answer = deliver(webhook_client, intent_event(localstripe_url, result.reference, "payment_intent.succeeded"))
        seen["webhook"] = answer.get_json()
        return result

    monkeypatch.setattr(StripeProvider, "collect", collect_then_webhook)
    resp = deposit(api, member, 5_000)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert seen["webhook"]["handled"] is True
    assert seen["webhook"]["payment_id"] == body["id"]  # the webhook made the row the API answer returns
    assert body["status"] == "succeeded"
    assert wallet_of(member.id)["balance"] == 5_100
    assert deposit_entries() == 2
    assert payment_count() == 2
    assert_ledger_invariants()


@pytest.mark.parametrize("currency", ["GBP", "USD"])
def test_deposits_in_other_currencies_reach_stripe_in_lower_case(stripe_app, api, localstripe_url, currency):
    member = make_member()
    resp = api.post(
        "/api/v1/wallet/deposits",
        {"amount": 999, "currency": currency, "payment_method": "pm_card_visa"},
        token=token_for(member),
    )
    assert resp.get_json()["status"] == "succeeded"
    (intent,) = intents_of(localstripe_url, member.id)
    assert (intent["amount"], intent["currency"]) == (999, currency.lower())
    assert wallet_of(member.id, currency)["balance"] == 999
    assert external_postings(currency) == [999]
    assert_ledger_invariants()


def test_payment_can_be_read_back_by_its_owner_only(stripe_app, api):
    member, other = make_member(), make_member()
    body = deposit(api, member, 1_000).get_json()
    resp = api.get(f"/api/v1/wallet/payments/{body['id']}", token=token_for(member))
    assert resp.status_code == 200
    assert (resp.get_json()["status"], resp.get_json()["direction"]) == ("succeeded", "deposit")
    assert_error(api.get(f"/api/v1/wallet/payments/{body['id']}", token=token_for(other)), 404)
    assert_ledger_invariants()


@pytest.mark.postgres
def test_racing_deliveries_and_the_api_answer_credit_once(stripe_app, localstripe_url):
    """PostgreSQL, real threads: the same success arrives as the API answer, three distinct events and
    three copies of one event, all at once. One deposit row, one credit, four stored event ids."""
    import json
    import threading

    from sqlalchemy import func, select

    from marketplace.payments import events
    from marketplace.payments.models import Payment, WebhookEvent
    from marketplace.wallet import services as wallet

    member = make_member()
    # Stripe charged; nothing is recorded yet (as if our answer were still on its way).
    client = stripe_client(localstripe_url)
    intent = client.v1.payment_intents.create(
        params={
            "amount": 6_000,
            "currency": "eur",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "metadata": {"member_id": str(member.id), "purpose": "wallet_deposit"},
        }
    )
    body = json.loads(intent_event(localstripe_url, intent.id, "payment_intent.succeeded"))
    deliveries = [{**body, "id": f"evt_race_{n}"} for n in range(3)] + [{**body, "id": "evt_race_same"}] * 3

    def record_api_answer():
        from marketplace.db import transaction

        with transaction():
            payment = deposits.lock_or_create_deposit(
                "stripe", intent.id, member_id=member.id, amount=6_000, currency="EUR"
            )
            deposits.settle_deposit(payment)
        return "api"

    calls = [record_api_answer] + [lambda event=event: events.process(event)["received"] for event in deliveries]
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def worker(index, call):
        with stripe_app.app_context():
            try:
                barrier.wait(timeout=30)
                results[index] = ("ok", call())
            except Exception as exc:  # noqa: BLE001 - reported below
                results[index] = ("error", repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a thread hung (deadlock?)"
    assert all(kind == "ok" for kind, _ in results), results
    db.session.expire_all()
    assert db.session.execute(select(func.count(Payment.id))).scalar_one() == 1
    assert db.session.execute(select(func.count()).select_from(WebhookEvent)).scalar_one() == 4
    assert wallet_of(member.id)["balance"] == 6_000
    assert deposit_entries() == 1
    assert wallet.find_payment_by_ref("stripe", intent.id).status == "succeeded"
    assert_ledger_invariants()
