"""POST /webhooks/stripe: signatures checked, each event id applied once, unknown types acknowledged."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.payments import events
from marketplace.payments.models import WebhookEvent

from ..helpers import assert_error, assert_ledger_invariants, make_member, token_for, wallet_of
from ..stripe_helpers import (
    OLD_WEBHOOK_URL,
    WEBHOOK_URL,
    authenticate,
    deliver,
    deposit_entries,
    event_payload,
    intent_event,
    only_payment,
    post_webhook,
    signed,
    three_d_secure_method,
)

pytest_plugins = ("tests.stripe_fixtures",)  # localstripe_url, stripe_app


def stored_events() -> int:
    db.session.expire_all()
    return db.session.execute(select(func.count()).select_from(WebhookEvent)).scalar_one()


def pending_deposit(api, url: str, amount: int = 4_200):
    """A 3-D Secure deposit the cardholder then completes: Stripe's event is all that credits it."""
    member = make_member()
    body = {"amount": amount, "currency": "EUR", "payment_method": three_d_secure_method(url)}
    resp = api.post("/api/v1/wallet/deposits", body, token=token_for(member))
    assert resp.get_json()["status"] == "pending"
    payment = only_payment()
    assert authenticate(url, payment.provider_ref, success=True)["status"] == "succeeded"
    return member, payment


def test_bad_or_missing_signature_is_400_and_changes_nothing(stripe_app, api, client, localstripe_url):
    member, payment = pending_deposit(api, localstripe_url)
    payload = intent_event(localstripe_url, payment.provider_ref, "payment_intent.succeeded")
    tampered = payload.replace(b'"amount": 4200', b'"amount": 4201')
    assert tampered != payload
    attempts = [
        (payload, signed(payload, secret="whsec_wrong")),
        (payload, {**signed(payload), "Stripe-Signature": "t=1,v1=" + "0" * 64}),
        (payload, {**signed(payload), "Stripe-Signature": "garbage"}),
        (payload, {"Content-Type": "application/json"}),  # no signature at all
        (payload, signed(payload, timestamp=int(time.time()) - 3600)),  # outside Stripe's 5-minute tolerance
        (tampered, signed(payload)),  # the body changed after signing
    ]
    for body, headers in attempts:
        for url in (WEBHOOK_URL, OLD_WEBHOOK_URL):
            resp = post_webhook(client, body, headers, url)
            assert_error(resp, 400, "bad_signature")
    assert stored_events() == 0
    assert only_payment().status == "pending"
    assert wallet_of(member.id)["balance"] == 0
    # The genuine delivery still works afterwards.
    assert deliver(client, payload).get_json()["status"] == "succeeded"
    assert wallet_of(member.id)["balance"] == 4_200
    assert_ledger_invariants()


def test_replayed_event_id_is_a_no_op(stripe_app, api, client, localstripe_url):
    member, payment = pending_deposit(api, localstripe_url)
    payload = intent_event(localstripe_url, payment.provider_ref, "payment_intent.succeeded", event_id="evt_once")
    first = deliver(client, payload)
    assert first.get_json() == {"received": True, "handled": True, "payment_id": payment.id, "status": "succeeded"}
    # The same delivery again, re-signed later, and on the older path: the first answer, nothing applied.
    for url in (WEBHOOK_URL, OLD_WEBHOOK_URL):
        again = post_webhook(client, payload, signed(payload, timestamp=int(time.time()) + 1), url)
        assert again.status_code == 200
        assert again.get_json() == {**first.get_json(), "replayed": True}
    # Even a different body under a used event id changes nothing: the id decides.
    failed = intent_event(
        localstripe_url, payment.provider_ref, "payment_intent.payment_failed", event_id="evt_once", status="canceled"
    )
    assert deliver(client, failed).get_json()["replayed"] is True
    assert stored_events() == 1
    assert only_payment().status == "succeeded"
    assert wallet_of(member.id)["balance"] == 4_200
    assert deposit_entries() == 1
    assert_ledger_invariants()


@pytest.mark.parametrize("event_type", ["customer.created", "invoice.paid", "payment_intent.amount_capturable_updated"])
def test_unknown_event_types_are_acknowledged_and_ignored(stripe_app, client, event_type):
    member = make_member(funds={"EUR": 1_000})
    payload = event_payload(
        event_type, {"id": "obj_1", "object": "thing", "metadata": {}}, event_id=f"evt_{event_type}"
    )
    resp = deliver(client, payload)
    assert resp.status_code == 200
    assert resp.get_json() == {"received": True, "handled": False}
    assert deliver(client, payload).get_json() == {"received": True, "handled": False, "replayed": True}
    assert stored_events() == 1
    assert wallet_of(member.id)["balance"] == 1_000
    assert_ledger_invariants()


def test_a_body_that_is_not_an_event_is_400(stripe_app, client):
    for payload in (b"[1, 2]", b'{"object": "event"}', b"not json"):
        resp = post_webhook(client, payload, signed(payload))
        assert resp.status_code == 400
    assert stored_events() == 0
    assert_ledger_invariants()


def test_an_event_that_fails_is_not_stored_so_stripe_redelivers_it(
    stripe_app, api, client, localstripe_url, monkeypatch
):
    member, payment = pending_deposit(api, localstripe_url)
    payload = intent_event(localstripe_url, payment.provider_ref, "payment_intent.succeeded")

    def broken(intent):
        raise RuntimeError("database went away")

    monkeypatch.setitem(events.HANDLERS, "payment_intent.succeeded", broken)
    assert deliver(client, payload).status_code == 500  # Stripe delivers it again later
    db.session.rollback()
    assert stored_events() == 0
    assert wallet_of(member.id)["balance"] == 0
    monkeypatch.undo()
    assert deliver(client, payload).get_json()["status"] == "succeeded"
    assert wallet_of(member.id)["balance"] == 4_200
    assert stored_events() == 1
    assert_ledger_invariants()


def test_failure_and_cancellation_events_fail_a_pending_deposit(stripe_app, api, client, localstripe_url):
    member = make_member()
    body = {"amount": 900, "currency": "EUR", "payment_method": three_d_secure_method(localstripe_url)}
    api.post("/api/v1/wallet/deposits", body, token=token_for(member))
    payment = only_payment()
    canceled = intent_event(localstripe_url, payment.provider_ref, "payment_intent.canceled", status="canceled")
    resp = deliver(client, canceled)
    assert resp.get_json()["status"] == "failed"
    assert only_payment().failure_message == "The payment was canceled."
    assert wallet_of(member.id)["balance"] == 0
    assert deposit_entries() == 0
    assert json.loads(db.session.get(WebhookEvent, json.loads(canceled)["id"]).result)["status"] == "failed"
    assert_ledger_invariants()
