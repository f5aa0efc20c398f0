"""Stripe's signed webhooks: they settle or fail pending wallet deposits.

``POST /payments/stripe/webhook``. Stripe signs every delivery with the
endpoint's secret (``STRIPE_WEBHOOK_SECRET``): ``Stripe-Signature:
t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``;
``stripe.Webhook.construct_event`` checks it and the timestamp (5 minutes).
Deliveries come at least once and in any order, so a replay must do nothing:
``wallet.services.confirm_deposit`` settles a pending payment exactly once.

Answers: 200 handled or deliberately ignored; 400 bad signature or body;
404 for one of our deposit intents whose payment is not recorded yet (the
event raced the deposit's commit: Stripe retries later); 503 while no
webhook secret is configured. The endpoint is CSRF-exempt: the signature
authenticates it, not a session.
"""

from __future__ import annotations

import logging

import stripe
from flask import Blueprint, current_app, jsonify, request

from ..errors import json_error
from ..wallet import services as wallet

log = logging.getLogger(__name__)

bp = Blueprint("payments_webhooks", __name__)

# Event type -> did the deposit succeed?
INTENT_OUTCOMES = {
    "payment_intent.succeeded": True,
    "payment_intent.payment_failed": False,
    "payment_intent.canceled": False,
}


@bp.post("/payments/stripe/webhook")
def stripe_webhook():
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        log.error("A Stripe webhook arrived but STRIPE_WEBHOOK_SECRET is not set")
        return json_error(503, "Stripe webhooks are not configured.", "unavailable")
    try:
        event = stripe.Webhook.construct_event(request.get_data(), request.headers.get("Stripe-Signature", ""), secret)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        log.warning("Rejected a Stripe webhook: %s", exc)
        return json_error(400, "The webhook signature or body is not valid.", "bad_signature")
    data = event.to_dict()
    succeeded = INTENT_OUTCOMES.get(data.get("type"))
    intent = (data.get("data") or {}).get("object")
    if succeeded is None or not isinstance(intent, dict):
        return jsonify(received=True, handled=False)
    return apply_intent_outcome(intent, succeeded=succeeded)


def apply_intent_outcome(intent: dict, *, succeeded: bool):
    """Settle or fail the pending deposit paid by ``intent``; a replay changes nothing."""
    intent_id = str(intent.get("id") or "")
    payment = wallet.find_payment_by_ref("stripe", intent_id)
    if payment is None or payment.direction != "deposit":
        if (intent.get("metadata") or {}).get("purpose") == "wallet_deposit":
            return json_error(404, f"No deposit recorded for {intent_id} yet; retry later.", "not_found")
        return jsonify(received=True, handled=False)
    if intent.get("amount") != payment.amount or str(intent.get("currency", "")).upper() != payment.currency:
        log.error(
            "Stripe PaymentIntent %s is %s %s but deposit %s is %s %s: not applied",
            intent_id,
            intent.get("amount"),
            intent.get("currency"),
            payment.id,
            payment.amount,
            payment.currency,
        )
        return jsonify(received=True, handled=False)
    payment = wallet.confirm_deposit(payment.id, succeeded)
    if succeeded and payment.status != "succeeded":
        log.error(
            "Stripe collected PaymentIntent %s but deposit %s is already %s: refund it or credit it by hand",
            intent_id,
            payment.id,
            payment.status,
        )
    return jsonify(received=True, handled=True, payment_id=payment.id, status=payment.status)
