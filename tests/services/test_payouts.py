"""Withdrawals through Stripe (localstripe): refunds to the member's card deposits newest first, the rest
queued for an operator; the money waits in the member's pending-payouts account until Stripe confirms."""

from __future__ import annotations

import json

import stripe
from sqlalchemy import select

from marketplace.extensions import db
from marketplace.notifications.models import Notification
from marketplace.operators.jobs import run_due
from marketplace.payments import payouts
from marketplace.payments.models import Payment, PayoutPart

from ..helpers import assert_error, assert_ledger_invariants, make_member, token_for, wallet_of
from ..stripe_helpers import (
    account_balance,
    deliver,
    event_payload,
    external_postings,
    free_port,
    stripe_client,
    stripe_settings,
    stripe_transport,
)

pytest_plugins = ("tests.stripe_fixtures",)  # localstripe_url, stripe_app


def deposit_references(member_id: int) -> list[str]:
    return list(
        db.session.execute(
            select(Payment.provider_ref)
            .where(Payment.member_id == member_id, Payment.direction == "deposit")
            .order_by(Payment.id)
        ).scalars()
    )


def parts(payment_id: int) -> list[tuple[str, int, str, str]]:
    db.session.expire_all()
    return [(p.method, p.amount, p.status, p.source_ref) for p in payouts.parts_of(payment_id)]


def pending_code(member_id: int) -> str:
    return f"member:{member_id}:pending_payouts:EUR"


def withdraw(api, member, amount: int, **kw):
    return api.post("/api/v1/wallet/withdrawals", {"amount": amount, "currency": "EUR"}, token=token_for(member), **kw)


def stripe_refunds(url: str) -> list[tuple[str, int, str]]:
    found = stripe_client(url).v1.refunds.list(params={"limit": 100}).data
    return sorted((r.payment_intent, r.amount, r.status) for r in found if r.payment_intent)


def test_withdrawal_refunds_the_newest_deposits_first_then_queues_the_rest(stripe_app, api, localstripe_url):
    member = make_member(funds={"EUR": 3_000})
    make_member(funds={"EUR": 50_000})  # someone else's deposit is never refunded to this member
    from marketplace.wallet import services as wallet

    wallet.deposit(member.id, 5_000, "EUR")
    older, newer = deposit_references(member.id)

    first = withdraw(api, member, 6_000)
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert body["status"] == "succeeded"
    assert parts(body["id"]) == [("refund", 5_000, "paid", newer), ("refund", 1_000, "paid", older)]
    assert stripe_refunds(localstripe_url) == sorted([(newer, 5_000, "succeeded"), (older, 1_000, "succeeded")])
    assert wallet_of(member.id)["balance"] == 2_000
    assert account_balance(pending_code(member.id)) == 0

    # 2,000 of the older deposit is left to refund: the rest of the wallet goes back to it.
    db.session.expire_all()
    second = withdraw(api, member, 2_000)
    body = second.get_json()
    assert body["status"] == "succeeded"
    assert [(p["method"], p["amount"], p["status"]) for p in body["parts"]] == [("refund", 2_000, "paid")]
    assert wallet_of(member.id)["balance"] == 0
    # every deposit is refunded in full now: nothing more can go back to a card
    assert [left for _, left in payouts.refundable_deposits(member.id, "EUR", "stripe")] == [0, 0]
    assert_ledger_invariants()


def test_money_that_no_card_can_take_waits_in_pending_payouts(stripe_app, api):
    member = make_member(funds={"EUR": 1_000})
    from marketplace.ledger import services as ledger

    # 4,000 more arrives from another member (a pool payout, a loan): it came from no card of this member's
    donor = make_member(funds={"EUR": 4_000})
    ledger.transfer(
        "test_transfer", ledger.wallet_account(donor.id, "EUR"), ledger.wallet_account(member.id, "EUR"), 4_000
    )
    db.session.commit()
    resp = withdraw(api, member, 3_500)
    body = resp.get_json()
    assert body["status"] == "pending"
    assert [(p["method"], p["amount"], p["status"]) for p in body["parts"]] == [
        ("refund", 1_000, "paid"),
        ("manual", 2_500, "queued"),
    ]
    assert wallet_of(member.id)["balance"] == 1_500
    assert account_balance(pending_code(member.id)) == 2_500  # not vanished: waiting for an operator
    assert external_postings()[-1] == -1_000  # only the refund left Stripe
    resp = api.get(f"/api/v1/wallet/payments/{body['id']}", token=token_for(member))
    assert resp.get_json()["status"] == "pending"
    assert_ledger_invariants()


def test_insufficient_funds_writes_nothing(stripe_app, api):
    member = make_member(funds={"EUR": 1_000})
    assert_error(withdraw(api, member, 1_001), 409, "insufficient_funds")
    assert db.session.execute(select(PayoutPart)).first() is None
    assert wallet_of(member.id)["balance"] == 1_000
    assert_ledger_invariants()


class PendingRefunds(stripe.RequestsClient):
    """Stripe confirms some refunds later (``pending``); localstripe always refunds at once: this transport
    reports its refunds as Stripe's pending ones until ``settled`` is set."""

    settled = False

    def request(self, method, url, headers, post_data=None):
        content, status, response_headers = super().request(method, url, headers, post_data)
        if "/v1/refunds" in url and status == 200 and not self.settled:
            body = json.loads(content)
            if body.get("object") == "refund":
                body["status"] = "pending"
                content = json.dumps(body).encode()
        return content, status, response_headers


def test_a_pending_refund_is_settled_by_the_webhook_once(stripe_app, api, client, localstripe_url):
    member = make_member(funds={"EUR": 2_000})
    with stripe_transport(PendingRefunds()):
        body = withdraw(api, member, 1_200).get_json()
    assert body["status"] == "pending"
    (part,) = payouts.parts_of(body["id"])
    assert (part.status, part.provider_ref[:3]) == ("sent", "re_")
    assert account_balance(pending_code(member.id)) == 1_200
    refund = stripe_client(localstripe_url).v1.refunds.retrieve(part.provider_ref).to_dict()
    payload = event_payload("charge.refund.updated", refund, event_id="evt_refund_ok")
    answer = deliver(client, payload).get_json()
    assert answer == {"received": True, "handled": True, "changed": 1}
    assert deliver(client, payload).get_json()["replayed"] is True
    assert parts(body["id"]) == [("refund", 1_200, "paid", part.source_ref)]
    assert account_balance(pending_code(member.id)) == 0
    assert external_postings() == [2_000, -1_200]
    assert db.session.get(Payment, body["id"]).status == "succeeded"
    assert_ledger_invariants()


def test_a_failed_refund_moves_to_the_manual_queue(stripe_app, api, client, localstripe_url):
    member = make_member(funds={"EUR": 2_000})
    with stripe_transport(PendingRefunds()):
        body = withdraw(api, member, 800).get_json()
    (part,) = payouts.parts_of(body["id"])
    failed = {
        "id": part.provider_ref,
        "object": "refund",
        "status": "failed",
        "failure_reason": "expired_or_canceled_card",
    }
    assert deliver(client, event_payload("refund.failed", failed)).get_json()["changed"] == 1
    db.session.expire_all()
    assert [(p.method, p.amount, p.status, p.replaces_id) for p in payouts.parts_of(body["id"])] == [
        ("refund", 800, "failed", None),
        ("manual", 800, "queued", part.id),
    ]
    assert account_balance(pending_code(member.id)) == 800  # still waiting, never vanished
    assert wallet_of(member.id)["balance"] == 1_200
    note = db.session.execute(select(Notification).where(Notification.member_id == member.id)).scalars().all()[-1]
    assert note.kind == "payout_delayed" and "8.00 EUR" in note.message
    # that deposit's 800 is refundable again (the refund failed), but the money is already queued for payout
    assert payouts.refundable_deposits(member.id, "EUR", "stripe")[0][1] == 2_000
    assert_ledger_invariants()


def test_charge_refunded_and_the_sweep_settle_refunds_stripe_confirmed(stripe_app, api, client, localstripe_url):
    member = make_member(funds={"EUR": 3_000})
    transport = PendingRefunds()
    with stripe_transport(transport):
        one = withdraw(api, member, 1_000).get_json()
        two = withdraw(api, member, 500).get_json()
    intent = payouts.parts_of(one["id"])[0].source_ref
    charge = stripe_client(localstripe_url).v1.payment_intents.retrieve(intent).latest_charge
    charge_id = charge if isinstance(charge, str) else charge.id  # localstripe expands it; Stripe gives the id
    charge = stripe_client(localstripe_url).v1.charges.retrieve(charge_id).to_dict()
    charge.pop("refunds", None)  # newer API versions leave them out: the app asks Stripe about its refunds
    answer = deliver(client, event_payload("charge.refunded", charge, event_id="evt_charge_refunded")).get_json()
    assert answer["changed"] == 2
    assert [p[2] for p in parts(one["id"]) + parts(two["id"])] == ["paid", "paid"]
    assert account_balance(pending_code(member.id)) == 0

    # The same, found by the run-due sweep when no event comes
    with stripe_transport(transport):
        three = withdraw(api, member, 300).get_json()
    assert parts(three["id"])[0][2] == "sent"
    report = run_due()["jobs"]["payouts"]
    assert report == {"refunds_sent": 0, "refunds_confirmed": 1}
    assert parts(three["id"])[0][2] == "paid"
    assert account_balance(pending_code(member.id)) == 0
    assert_ledger_invariants()


def test_stripe_down_during_a_withdrawal_keeps_the_money_pending_until_the_sweep(stripe_app, api, localstripe_url):
    member = make_member(funds={"EUR": 2_000})
    with stripe_settings(stripe_app, STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}"):
        body = withdraw(api, member, 700).get_json()
    assert body["status"] == "pending"
    assert parts(body["id"])[0][2] == "pending"  # never sent: no refund exists at Stripe
    assert stripe_refunds(localstripe_url) == []
    assert wallet_of(member.id)["balance"] == 1_300
    assert account_balance(pending_code(member.id)) == 700
    report = run_due()["jobs"]["payouts"]
    assert report["refunds_sent"] == 1
    assert parts(body["id"])[0][2] == "paid"
    assert len(stripe_refunds(localstripe_url)) == 1
    assert account_balance(pending_code(member.id)) == 0
    assert_ledger_invariants()


def test_sandbox_withdrawals_refund_sandbox_deposits(api):
    member = make_member(funds={"EUR": 1_000})
    body = withdraw(api, member, 400).get_json()
    assert body["status"] == "succeeded"
    assert [(p["method"], p["status"]) for p in body["parts"]] == [("refund", "paid")]
    assert account_balance("external:sandbox:EUR") == 600
    assert_ledger_invariants()


def test_a_withdrawal_that_fails_half_way_writes_nothing(stripe_app, api, monkeypatch):
    member = make_member(funds={"EUR": 2_000})
    before = (db.session.execute(select(Payment.id)).all(), wallet_of(member.id))

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away after the wallet was debited")

    monkeypatch.setattr(payouts, "split_withdrawal", broken)
    try:
        payouts.withdraw(member.id, 500, "EUR")
    except RuntimeError:
        pass
    db.session.rollback()
    assert (db.session.execute(select(Payment.id)).all(), wallet_of(member.id)) == before
    assert db.session.execute(select(PayoutPart)).first() is None
    assert account_balance(pending_code(member.id)) == 0
    assert_ledger_invariants()


def test_an_approval_while_stripe_is_down_keeps_the_payout_queued(stripe_app, api):
    member = make_member(funds={"EUR": 100})
    from marketplace.ledger import services as ledger

    donor = make_member(funds={"EUR": 900})
    ledger.transfer(
        "test_transfer", ledger.wallet_account(donor.id, "EUR"), ledger.wallet_account(member.id, "EUR"), 900
    )
    db.session.commit()
    body = withdraw(api, member, 1_000).get_json()
    queued = [p for p in payouts.parts_of(body["id"]) if p.method == "manual"][0]
    operator = make_member("operator")
    from marketplace.payments.providers import ProviderUnavailable

    with stripe_settings(stripe_app, STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}"):
        try:
            payouts.approve_payout(queued.id, operator.id)
        except ProviderUnavailable:
            pass
        else:  # pragma: no cover
            raise AssertionError("expected ProviderUnavailable")
    db.session.expire_all()
    part = db.session.get(PayoutPart, queued.id)
    assert (part.status, part.provider_ref) == ("queued", "")
    assert "unavailable" in part.failure_message
    assert account_balance(pending_code(member.id)) == 900
    assert_ledger_invariants()
