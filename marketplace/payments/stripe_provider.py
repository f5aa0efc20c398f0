"""Stripe through the real ``stripe`` library (a local Stripe-compatible server in tests).

Deposits create and confirm a PaymentIntent; if Stripe says it succeeded the
wallet is credited at once, otherwise the payment stays ``pending`` until
``confirm`` is called with the PaymentIntent's final state.
"""

from __future__ import annotations

from dataclasses import dataclass

import stripe

from .providers import PaymentProvider, ProviderResult


@dataclass
class StripeProvider(PaymentProvider):
    api_key: str
    api_base: str = ""
    name = "stripe"

    @classmethod
    def from_config(cls, config) -> StripeProvider:
        if not config.get("STRIPE_API_KEY"):
            raise RuntimeError("MARKETPLACE_PAYMENTS=stripe needs STRIPE_API_KEY")
        return cls(api_key=config["STRIPE_API_KEY"], api_base=config.get("STRIPE_API_BASE") or "")

    def _client(self) -> stripe.StripeClient:
        kwargs = {}
        if self.api_base:
            kwargs["base_addresses"] = {"api": self.api_base}
        return stripe.StripeClient(self.api_key, **kwargs)

    def collect(self, *, amount, currency, member_id, payment_method=None):
        intent = self._client().v1.payment_intents.create(
            params={
                "amount": amount,
                "currency": currency.lower(),
                "payment_method": payment_method or "pm_card_visa",
                "confirm": True,
                "metadata": {"member_id": str(member_id)},
                "payment_method_types": ["card"],
            }
        )
        status = {"succeeded": "succeeded", "canceled": "failed", "requires_payment_method": "failed"}.get(intent.status, "pending")
        return ProviderResult(status, intent.id)

    def payout(self, *, amount, currency, member_id):
        refund_like = self._client().v1.payouts.create(
            params={"amount": amount, "currency": currency.lower(), "metadata": {"member_id": str(member_id)}}
        )
        return ProviderResult("succeeded" if refund_like.status in ("paid", "pending", "in_transit") else "failed", refund_like.id)
