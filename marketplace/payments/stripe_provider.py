"""Stripe through the real ``stripe`` library (``localstripe`` stands in for it in tests).

Deposits (``collect``) create and confirm a card PaymentIntent server-side.
Stripe's answer decides the deposit: ``succeeded`` credits the wallet at once;
``requires_action`` (3-D Secure) and ``processing`` leave it ``pending`` until
the signed ``payment_intent.*`` webhook arrives (payments/webhooks.py); a
declined card (HTTP 402) or any other final state fails it, crediting nothing.

Withdrawals (``payout``) create a Stripe Payout from the platform's Stripe
balance, tagged with the member id in its metadata. A Payout always goes to a
bank account of the Stripe account that makes it, i.e. the platform's own:
handing the money on to the member's bank is the platform treasury's job.
Paying members' banks through Stripe itself needs Stripe Connect (a connected
account per member and ``transfers.create(destination=...)``), which needs a
per-member account id this application does not store yet.

The client is built for every call from the app's config, so switching
``STRIPE_API_KEY`` / ``STRIPE_API_BASE`` needs no restart.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass

import stripe

from ..errors import ValidationFailed
from .providers import PaymentProvider, ProviderResult, ProviderUnavailable

log = logging.getLogger(__name__)

# Stripe's own test payment method; it only exists with test-mode keys.
TEST_MODE_DEFAULT_PAYMENT_METHOD = "pm_card_visa"

_INTENT_STATUS = {
    "succeeded": "succeeded",
    "requires_action": "pending",
    "processing": "pending",
}

_PAYOUT_STATUS = {
    "paid": "succeeded",
    "pending": "pending",
    "in_transit": "pending",
    "failed": "failed",
    "canceled": "failed",
}


def deposit_status(intent_status: str) -> str:
    """A PaymentIntent's status as a deposit's: anything not listed ends the deposit ``failed``."""
    return _INTENT_STATUS.get(intent_status, "failed")


def payout_status(stripe_status: str) -> str:
    return _PAYOUT_STATUS.get(stripe_status, "failed")


def _is_test_key(api_key: str) -> bool:
    return api_key.startswith(("sk_test_", "rk_test_"))


@contextmanager
def _provider_errors(action: str, member_id: int):
    """Stripe's refusals of our request as 422, anything else (network, keys, 5xx) as 503."""
    try:
        yield
    except stripe.InvalidRequestError as exc:
        raise ValidationFailed(
            "The payment provider rejected the request.",
            errors={exc.param or "payment_method": [exc.user_message or "Not accepted by the payment provider."]},
        ) from exc
    except stripe.StripeError as exc:
        log.exception("Stripe unavailable for a %s of member %s", action, member_id)
        raise ProviderUnavailable() from exc


@dataclass
class StripeProvider(PaymentProvider):
    api_key: str
    api_base: str = ""
    max_network_retries: int = 2
    name = "stripe"

    @classmethod
    def from_config(cls, config) -> StripeProvider:
        if not config.get("STRIPE_API_KEY"):
            raise RuntimeError("MARKETPLACE_PAYMENTS=stripe needs STRIPE_API_KEY")
        return cls(api_key=config["STRIPE_API_KEY"], api_base=config.get("STRIPE_API_BASE") or "")

    def _client(self) -> stripe.StripeClient:
        kwargs = {}
        if self.api_base:
            kwargs["base_addresses"] = {"api": self.api_base.rstrip("/")}
        # Retried POSTs carry the same generated Idempotency-Key: Stripe runs them once.
        return stripe.StripeClient(self.api_key, max_network_retries=self.max_network_retries, **kwargs)

    def _payment_method(self, payment_method: str | None) -> str:
        if payment_method:
            return payment_method
        if _is_test_key(self.api_key):
            return TEST_MODE_DEFAULT_PAYMENT_METHOD
        raise ValidationFailed(
            "The payment provider needs a payment method.",
            errors={"payment_method": ["Required: a Stripe PaymentMethod id (pm_...)."]},
        )

    def collect(self, *, amount, currency, member_id, payment_method=None):
        method = self._payment_method(payment_method)
        client = self._client()
        with _provider_errors("deposit", member_id):
            # Created first, confirmed second: a declined confirmation still names its intent.
            intent = client.v1.payment_intents.create(
                params={
                    "amount": amount,
                    "currency": currency.lower(),
                    "payment_method": method,
                    "payment_method_types": ["card"],
                    "metadata": {"member_id": str(member_id), "purpose": "wallet_deposit"},
                }
            )
            try:
                intent = client.v1.payment_intents.confirm(intent.id)
            except stripe.CardError as exc:
                log.info("Stripe declined deposit intent %s of member %s: %s", intent.id, member_id, exc.user_message)
                return ProviderResult("failed", intent.id)
        return ProviderResult(deposit_status(intent.status), intent.id)

    def payout(self, *, amount, currency, member_id):
        try:
            payout = self._client().v1.payouts.create(
                params={
                    "amount": amount,
                    "currency": currency.lower(),
                    "description": f"Marketplace wallet withdrawal, member {member_id}",
                    "metadata": {"member_id": str(member_id), "purpose": "wallet_withdrawal"},
                }
            )
        except (stripe.CardError, stripe.InvalidRequestError) as exc:
            log.warning("Stripe refused a payout for member %s: %s", member_id, exc.user_message or exc)
            return ProviderResult("failed", "")
        except stripe.StripeError as exc:
            log.exception("Stripe unavailable for a payout of member %s", member_id)
            raise ProviderUnavailable() from exc
        return ProviderResult(payout_status(payout.status), payout.id)
