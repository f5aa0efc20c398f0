"""Stripe's signed webhooks: ``POST /webhooks/stripe`` (and the older ``/payments/stripe/webhook``).

Stripe signs every delivery with the endpoint's secret
(``STRIPE_WEBHOOK_SECRET``): ``Stripe-Signature: t=<unix time>,v1=<hex
HMAC-SHA256 of "<t>.<raw body>">``; ``stripe.WebhookSignature.verify_header``
checks it and the timestamp (5 minutes) before the body is even parsed. A bad or missing signature is 400 and
nothing is read or written. A verified event is applied once
(``events.process``): a replayed event id changes nothing and gets the first
answer again; an unknown type is acknowledged and ignored.

Answers: 200 handled, ignored or replayed; 400 bad signature or body; 503
while no webhook secret is configured. Any other failure is a 5xx, so Stripe
delivers the event again later. The endpoint is CSRF-exempt: the signature
authenticates it, not a session.
"""

from __future__ import annotations

import json
import logging

import stripe
from flask import Blueprint, current_app, jsonify, request

from ..errors import json_error
from . import events

log = logging.getLogger(__name__)

bp = Blueprint("payments_webhooks", __name__)


@bp.post("/webhooks/stripe")
@bp.post("/payments/stripe/webhook")  # the first path, kept for endpoints already configured at Stripe
def stripe_webhook():
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        log.error("A Stripe webhook arrived but STRIPE_WEBHOOK_SECRET is not set")
        return json_error(503, "Stripe webhooks are not configured.", "unavailable")
    payload = request.get_data()
    try:
        stripe.WebhookSignature.verify_header(
            payload, request.headers.get("Stripe-Signature", ""), secret, tolerance=stripe.Webhook.DEFAULT_TOLERANCE
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        log.warning("Rejected a Stripe webhook: %s", exc)
        return json_error(400, "The webhook signature or body is not valid.", "bad_signature")
    try:
        event = json.loads(payload)
    except ValueError:
        event = None
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        return json_error(400, "The webhook body is not a Stripe event.", "bad_request")
    return jsonify(events.process(event))
