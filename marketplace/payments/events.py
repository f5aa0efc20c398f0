"""Stripe events, each processed once: deposits, card authorizations, refunds, payouts.

``process(event)`` stores the event id and applies it in one transaction; a
second delivery of the same id (Stripe delivers at least once) finds the id
and answers what the first did, changing nothing. Unknown event types are
stored and acknowledged. Every handler is written so that its effect is also
right when the API answer already applied it (or applies it later).
"""

from __future__ import annotations

import json
import logging

from flask import current_app

from ..accounts.models import Member
from ..db import transaction
from ..extensions import db
from . import deposits, payouts
from .models import WebhookEvent
from .rows import insert_ignoring_conflict

log = logging.getLogger(__name__)

PROVIDER = "stripe"


def process(event: dict) -> dict:
    """Apply one verified event exactly once; returns the answer for the provider."""
    event_id = str(event.get("id") or "")[:255]
    event_type = str(event.get("type") or "")[:100]
    with transaction() as session:
        inserted = insert_ignoring_conflict(
            WebhookEvent,
            {"event_id": event_id, "provider": PROVIDER, "type": event_type, "result": "{}"},
            ["event_id"],
        )
        row = session.get(WebhookEvent, event_id, populate_existing=True)
        if not inserted:
            return {**json.loads(row.result or "{}"), "replayed": True}
        handler = HANDLERS.get(event_type)
        obj = (event.get("data") or {}).get("object")
        if handler is None or not isinstance(obj, dict):
            answer = {"received": True, "handled": False}
        else:
            answer = {"received": True, **handler(obj)}
        row.result = json.dumps(answer, sort_keys=True)
    return answer


def _ignored() -> dict:
    return {"handled": False}


def _purpose(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("purpose") or "")


# ---------------------------------------------------------------- PaymentIntents


def _received(intent: dict) -> int:
    received = intent.get("amount_received")
    return received if isinstance(received, int) and received > 0 else intent.get("amount")


def _deposit_for(intent: dict, *, create: bool):
    """The locked deposit paid by ``intent``; created from its metadata when ``create`` and unknown."""
    intent_id = str(intent.get("id") or "")
    payment = deposits.lock_by_reference(PROVIDER, intent_id)
    if payment is not None or not create or _purpose(intent) != "wallet_deposit":
        return payment
    # The API answer has not recorded it (yet, or ever: a crash after Stripe charged): the
    # signed event says who paid what, so it is recorded (and credited) from here.
    try:
        member_id = int((intent.get("metadata") or {}).get("member_id"))
    except (TypeError, ValueError):
        return None
    currency = str(intent.get("currency") or "").upper()
    amount = _received(intent)
    if (
        db.session.get(Member, member_id) is None
        or currency not in current_app.config["CURRENCIES"]
        or not isinstance(amount, int)
        or amount <= 0
    ):
        log.error(
            "Stripe PaymentIntent %s names no valid deposit (member %s, %s %s)", intent_id, member_id, amount, currency
        )
        return None
    return deposits.lock_or_create_deposit(
        PROVIDER,
        intent_id,
        member_id=member_id,
        amount=amount,
        currency=currency,
        payment_method=str(intent.get("payment_method") or ""),
    )


def _matches(payment, intent: dict) -> bool:
    same = _received(intent) == payment.amount and str(intent.get("currency", "")).upper() == payment.currency
    if not same:
        log.error(
            "Stripe PaymentIntent %s is %s %s but deposit %s is %s %s: not applied",
            intent.get("id"),
            _received(intent),
            intent.get("currency"),
            payment.id,
            payment.amount,
            payment.currency,
        )
    return same


def _deposit_answer(payment) -> dict:
    return {"handled": True, "payment_id": payment.id, "status": payment.status}


def intent_succeeded(intent: dict) -> dict:
    if _purpose(intent) == "pool_pledge":
        from . import authorizations

        return authorizations.on_intent_event(intent, "succeeded")
    payment = _deposit_for(intent, create=True)
    if payment is None or payment.direction != "deposit" or not _matches(payment, intent):
        return _ignored()
    deposits.settle_deposit(payment)
    return _deposit_answer(payment)


def _intent_ended(intent: dict, kind: str) -> dict:
    if _purpose(intent) == "pool_pledge":
        from . import authorizations

        return authorizations.on_intent_event(intent, kind)
    payment = _deposit_for(intent, create=False)
    if payment is None or payment.direction != "deposit":
        return _ignored()
    error = intent.get("last_payment_error") or {}
    message = error.get("message") if isinstance(error, dict) else ""
    deposits.fail_deposit(payment, message or f"The payment was {kind}.")
    return _deposit_answer(payment)


def intent_failed(intent: dict) -> dict:
    return _intent_ended(intent, "failed")


def intent_canceled(intent: dict) -> dict:
    return _intent_ended(intent, "canceled")


# ---------------------------------------------------------------- refunds and payouts


def charge_refunded(charge: dict) -> dict:
    """Some refund of a charge moved: settle our sent refunds of its PaymentIntent."""
    intent_id = str(charge.get("payment_intent") or "")
    listed = ((charge.get("refunds") or {}).get("data")) if isinstance(charge.get("refunds"), dict) else None
    changed = 0
    if listed:
        for refund in listed:
            changed += _refund_moved(refund)
    else:  # newer API versions leave the refunds out of the charge: ask Stripe about ours
        changed += payouts.check_sent_refunds(payouts.sent_refunds_of(PROVIDER, intent_id))
    return {"handled": True, "changed": changed}


def _refund_moved(refund: dict) -> int:
    part = payouts.part_by_provider_ref(PROVIDER, str(refund.get("id") or ""))
    if part is None or part.method != "refund":
        return 0
    before = part.status
    status = {"succeeded": "succeeded", "failed": "failed", "canceled": "failed"}.get(refund.get("status"), "pending")
    payouts.apply_part_outcome(part, status, str(refund.get("failure_reason") or ""))
    return int(part.status != before)


def refund_updated(refund: dict) -> dict:
    changed = _refund_moved(refund)
    return {"handled": True, "changed": changed}


def _payout_moved(payout: dict, status: str) -> dict:
    part = payouts.part_by_provider_ref(PROVIDER, str(payout.get("id") or ""))
    if part is None or part.method != "manual":
        return _ignored()
    message = str(payout.get("failure_message") or "")
    payouts.apply_part_outcome(part, status, message)
    return {"handled": True, "payout_id": part.id, "status": part.status}


def payout_paid(payout: dict) -> dict:
    return _payout_moved(payout, "succeeded")


def payout_failed(payout: dict) -> dict:
    return _payout_moved(payout, "failed")


HANDLERS = {
    "payment_intent.succeeded": intent_succeeded,
    "payment_intent.payment_failed": intent_failed,
    "payment_intent.canceled": intent_canceled,
    "charge.refunded": charge_refunded,
    "charge.refund.updated": refund_updated,
    "refund.updated": refund_updated,
    "refund.failed": refund_updated,
    "payout.paid": payout_paid,
    "payout.failed": payout_failed,
    "payout.canceled": payout_failed,
}
