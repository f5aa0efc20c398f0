"""The operators' payout queue: approve (paid out through the provider) or reject (back to the wallet), audited."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from marketplace.extensions import db
from marketplace.ledger import services as ledger
from marketplace.notifications.models import Notification
from marketplace.operators.models import AuditLog
from marketplace.payments import payouts
from marketplace.payments.models import PayoutPart
from marketplace.wallet import services as wallet

from ..helpers import assert_ledger_invariants, csrf_token, login, make_member, wallet_of
from ..stripe_helpers import account_balance, deliver, event_payload, external_postings, stripe_client
from .test_accounts_pages import IsolatedClient

pytest_plugins = ("tests.stripe_fixtures",)  # localstripe_url, stripe_app


@pytest.fixture
def client(app):
    app.test_client_class = IsolatedClient
    try:
        yield app.test_client()
    finally:
        app.test_client_class = None


@pytest.fixture
def operator(client):
    member = make_member("operator", name="Olga Operator")
    assert login(client, member.email).status_code == 302
    return member


def queued_withdrawal(amount: int = 2_500, currency: str = "EUR"):
    """A member whose money came from no card of theirs withdraws it: one queued manual payout."""
    member, donor = make_member(name="Pat Payee"), make_member(funds={currency: amount})
    ledger.transfer(
        "test_transfer", ledger.wallet_account(donor.id, currency), ledger.wallet_account(member.id, currency), amount
    )
    db.session.commit()
    payment = wallet.withdraw(member.id, amount, currency)
    (part,) = payouts.parts_of(payment.id)
    assert (part.method, part.status) == ("manual", "queued")
    return member, payment, part


def fresh_part(part_id: int) -> PayoutPart:
    db.session.expire_all()
    return db.session.get(PayoutPart, part_id)


def audit(action: str) -> list[dict]:
    db.session.expire_all()
    rows = db.session.execute(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)).scalars()
    return [{"target": r.target_id, "actor": r.actor_id, **json.loads(r.details)} for r in rows]


def decide(client, part_id: int, action: str, **data):
    token = csrf_token(client.get("/ops/payouts").get_data(as_text=True))
    return client.post(f"/ops/payouts/{part_id}/{action}", data={"csrf_token": token, **data})


def test_operator_approves_a_payout_and_stripe_confirms_it(stripe_app, client, operator, localstripe_url):
    member, payment, part = queued_withdrawal()
    page = client.get("/ops/payouts").get_data(as_text=True)
    assert f'id="payout-{part.id}"' in page and "Pat Payee" in page and "25.00 EUR" in page
    pending = f"member:{member.id}:pending_payouts:EUR"
    assert account_balance(pending) == 2_500

    resp = decide(client, part.id, "approve")
    assert resp.status_code == 302
    part = fresh_part(part.id)
    assert (part.status, part.reviewed_by) == ("sent", operator.id)
    payout = stripe_client(localstripe_url).v1.payouts.retrieve(part.provider_ref)
    assert (payout.amount, payout.currency, payout.status) == (2_500, "eur", "pending")
    assert payout.metadata["member_id"] == str(member.id)
    assert account_balance(pending) == 2_500  # not paid until Stripe says so
    assert audit("payout.approve") == [
        {"target": str(part.id), "actor": operator.id, "member_id": member.id, "amount": 2_500, "currency": "EUR"}
    ]
    assert "is on its way" in client.get("/ops/payouts").get_data(as_text=True)

    paid = {**payout.to_dict(), "status": "paid"}  # localstripe never pays out: Stripe's event, signed
    answer = deliver(client, event_payload("payout.paid", paid)).get_json()
    assert answer == {"received": True, "handled": True, "payout_id": part.id, "status": "paid"}
    assert fresh_part(part.id).status == "paid"
    assert account_balance(pending) == 0
    assert external_postings()[-1] == -2_500
    assert wallet.get_payment(member.id, payment.id).status == "succeeded"
    history = client.get("/ops/payouts").get_data(as_text=True)
    assert "No payouts are waiting." in history and part.provider_ref in history
    assert_ledger_invariants()


def test_a_payout_stripe_refuses_stays_in_the_queue(stripe_app, client, operator):
    # localstripe pays out only in EUR, as Stripe refuses a payout it cannot make
    member, payment, part = queued_withdrawal(1_000, "GBP")
    resp = decide(client, part.id, "approve")
    assert resp.status_code == 302
    part = fresh_part(part.id)
    assert part.status == "queued" and part.failure_message
    page = client.get("/ops/payouts").get_data(as_text=True)
    assert "The provider refused payout" in page
    assert len(audit("payout.refused")) == 1
    assert account_balance(f"member:{member.id}:pending_payouts:GBP") == 1_000
    assert_ledger_invariants()


def test_operator_rejects_a_payout_and_the_money_goes_back_to_the_wallet(client, operator):
    member, payment, part = queued_withdrawal(1_800)
    assert wallet_of(member.id)["balance"] == 0
    resp = decide(client, part.id, "reject", reason="Bank details do not match the member")
    assert resp.status_code == 302
    assert fresh_part(part.id).status == "returned"
    assert wallet_of(member.id)["balance"] == 1_800
    assert account_balance(f"member:{member.id}:pending_payouts:EUR") == 0
    assert wallet.get_payment(member.id, payment.id).status == "failed"
    (row,) = audit("payout.reject")
    assert (row["actor"], row["amount"], row["reason"]) == (operator.id, 1_800, "Bank details do not match the member")
    note = db.session.execute(select(Notification).where(Notification.kind == "payout_returned")).scalar_one()
    assert note.member_id == member.id and "Bank details do not match" in note.message
    # decided once: a second decision is refused and changes nothing
    decide(client, part.id, "approve")
    assert "not waiting for approval" in client.get("/ops/payouts").get_data(as_text=True)
    assert wallet_of(member.id)["balance"] == 1_800
    assert_ledger_invariants()


def test_sandbox_payouts_are_paid_at_once(client, operator):
    member, payment, part = queued_withdrawal(900)
    decide(client, part.id, "approve")
    assert fresh_part(part.id).status == "paid"
    assert account_balance("external:sandbox:EUR") == 0  # the donor's 900 came in and went out
    assert wallet.get_payment(member.id, payment.id).status == "succeeded"
    assert_ledger_invariants()


def test_only_operators_decide_and_csrf_is_required(client):
    member, payment, part = queued_withdrawal(500)
    assert client.get("/ops/payouts").status_code == 302  # anonymous: sign in first
    assert login(client, member.email).status_code == 302
    assert client.get("/ops/payouts").status_code == 403
    assert client.post(f"/ops/payouts/{part.id}/approve", data={}).status_code in (400, 403)
    operator = make_member("operator")
    ops = client.application.test_client()
    assert login(ops, operator.email).status_code == 302
    assert ops.post(f"/ops/payouts/{part.id}/reject", data={}).status_code == 400  # no CSRF token: refused
    assert fresh_part(part.id).status == "queued"
    assert wallet_of(member.id)["balance"] == 0
    assert_ledger_invariants()
