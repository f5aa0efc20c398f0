"""Stripe through the real ``stripe`` library (``localstripe`` stands in for it in tests).

- Deposits (``collect``) create a card PaymentIntent for the member's Stripe
  Customer with our idempotency key, then confirm it server-side. Stripe's
  answer decides the deposit: ``succeeded`` credits the wallet at once;
  ``requires_action`` (3-D Secure) and ``processing`` leave it ``pending``
  until the signed ``payment_intent.*`` webhook arrives; a declined card
  (HTTP 402) fails it (the intent is cancelled so it can never be charged
  later), crediting nothing.
- Card-backed pledges (``authorize``) are PaymentIntents with
  ``capture_method=manual``: ``capture`` takes ``amount_to_capture`` (the rest
  is released), ``cancel`` releases all of it.
- Withdrawals are ``refund``s of earlier deposits' PaymentIntents; what no
  deposit can take goes to an operator-approved ``payout``: a Stripe Payout
  from the platform's Stripe balance to the platform's bank, tagged with the
  member id, which the treasury hands on (paying members' banks straight
  from Stripe needs Stripe Connect, which this application does not use).

The client is built for every call from the app's config, so switching
``STRIPE_API_KEY`` / ``STRIPE_API_BASE`` needs no restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import stripe

from ..errors import ValidationFailed
from ..texts import N_, Msg
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

_REFUND_STATUS = {
    "succeeded": "succeeded",
    "pending": "pending",
    "requires_action": "pending",
    "failed": "failed",
    "canceled": "failed",
}


def deposit_status(intent_status: str) -> str:
    """A PaymentIntent's status as a deposit's: anything not listed ends the deposit ``failed``."""
    return _INTENT_STATUS.get(intent_status, "failed")


def payout_status(stripe_status: str) -> str:
    return _PAYOUT_STATUS.get(stripe_status, "failed")


def refund_status(stripe_status: str) -> str:
    return _REFUND_STATUS.get(stripe_status, "pending")


def _is_test_key(api_key: str) -> bool:
    return api_key.startswith(("sk_test_", "rk_test_"))


@contextmanager
def _provider_errors(action: str, member_id: int | str):
    """Stripe's refusals of our request as 422, anything else (network, keys, 5xx) as 503."""
    try:
        yield
    except stripe.InvalidRequestError as exc:
        raise ValidationFailed(
            "The payment provider rejected the request.",
            errors={
                exc.param or "payment_method": [exc.user_message or Msg(N_("Not accepted by the payment provider."))]
            },
        ) from exc
    except stripe.CardError:
        raise
    except stripe.StripeError as exc:
        log.exception("Stripe unavailable for a %s of %s", action, member_id)
        raise ProviderUnavailable() from exc


def _options(idempotency_key: str | None) -> dict | None:
    return {"idempotency_key": idempotency_key} if idempotency_key else None


def _declined(exc: stripe.CardError) -> tuple[str, str]:
    return exc.user_message or "Your card was declined.", exc.code or "card_declined"


@dataclass
class StripeProvider(PaymentProvider):
    api_key: str
    api_base: str = ""
    max_network_retries: int = 2
    name = "stripe"
    uses_customers = True

    @classmethod
    def from_config(cls, config) -> StripeProvider:
        if not config.get("STRIPE_API_KEY"):
            raise RuntimeError("MARKETPLACE_PAYMENTS=stripe needs STRIPE_API_KEY")
        return cls(api_key=config["STRIPE_API_KEY"], api_base=config.get("STRIPE_API_BASE") or "")

    def _client(self) -> stripe.StripeClient:
        kwargs = {}
        if self.api_base:
            kwargs["base_addresses"] = {"api": self.api_base.rstrip("/")}
        # Retried POSTs carry the same Idempotency-Key: Stripe runs them once.
        return stripe.StripeClient(self.api_key, max_network_retries=self.max_network_retries, **kwargs)

    def _payment_method(self, payment_method: str | None) -> str:
        if payment_method:
            return payment_method
        if _is_test_key(self.api_key):
            return TEST_MODE_DEFAULT_PAYMENT_METHOD
        raise ValidationFailed(
            "The payment provider needs a payment method.",
            errors={"payment_method": [Msg(N_("Required: a Stripe PaymentMethod id (pm_...)."))]},
        )

    # ------------------------------------------------------------ customers and cards

    def create_customer(self, *, member_id, email, name):
        with _provider_errors("customer", member_id):
            customer = self._client().v1.customers.create(
                params={"email": email, "name": name, "metadata": {"member_id": str(member_id)}},
                options=_options(f"marketplace-customer-{member_id}"),
            )
        return customer.id

    def attach_card_token(self, *, customer, token):
        """A card tokenized by Stripe.js (``tok_...``) saved on the customer; its ``card_...`` id pays."""
        try:
            with _provider_errors("card", customer):
                card = self._client().v1.customers.payment_sources.create(customer, params={"source": token})
        except stripe.CardError as exc:
            raise ValidationFailed("The card was declined.", errors={"payment_method": [_declined(exc)[0]]}) from exc
        return card.id

    def saved_cards(self, customer):
        if not customer:
            return []
        client = self._client()
        cards = []
        with _provider_errors("card list", customer):
            methods = client.v1.payment_methods.list(params={"customer": customer, "type": "card"})
            sources = client.v1.customers.payment_sources.list(customer, params={"object": "card"})
        for method in methods.data:
            card = method.card
            cards.append(
                {
                    "id": method.id,
                    "brand": card.brand,
                    "last4": card.last4,
                    "exp_month": card.exp_month,
                    "exp_year": card.exp_year,
                }
            )
        for card in sources.data:
            cards.append(
                {
                    "id": card.id,
                    "brand": card.brand,
                    "last4": card.last4,
                    "exp_month": card.exp_month,
                    "exp_year": card.exp_year,
                }
            )
        return cards

    # ------------------------------------------------------------ payments in

    def _intent(self, *, amount, currency, member_id, payment_method, customer, idempotency_key, metadata, manual):
        """Create (idempotently) and confirm a PaymentIntent; return it, or raise CardError on a decline."""
        client = self._client()
        params = {
            "amount": amount,
            "currency": currency.lower(),
            "payment_method": self._payment_method(payment_method),
            "payment_method_types": ["card"],
            "metadata": {"member_id": str(member_id), **(metadata or {})},
        }
        if customer:
            params["customer"] = customer
        if manual:
            params["capture_method"] = "manual"
        # Created first, confirmed second: a declined confirmation still names its intent.
        intent = client.v1.payment_intents.create(params=params, options=_options(idempotency_key))
        if intent.status == "requires_confirmation" and idempotency_key:
            # A key used before gets Stripe's first answer again, from before that request confirmed it.
            intent = client.v1.payment_intents.retrieve(intent.id)
        if intent.status != "requires_confirmation":
            return intent
        try:
            return client.v1.payment_intents.confirm(intent.id)
        except stripe.CardError as exc:
            exc.intent_id = intent.id
            raise

    def _cancel_quietly(self, intent_id: str) -> None:
        try:
            self._client().v1.payment_intents.cancel(intent_id)
        except stripe.StripeError:
            log.warning("Could not cancel declined PaymentIntent %s; the sweep will retry", intent_id)

    def collect(self, *, amount, currency, member_id, payment_method=None, customer="", idempotency_key=None):
        with _provider_errors("deposit", member_id):
            try:
                intent = self._intent(
                    amount=amount,
                    currency=currency,
                    member_id=member_id,
                    payment_method=payment_method,
                    customer=customer,
                    idempotency_key=idempotency_key,
                    metadata={"purpose": "wallet_deposit"},
                    manual=False,
                )
            except stripe.CardError as exc:
                message, code = _declined(exc)
                intent_id = getattr(exc, "intent_id", "")
                log.info("Stripe declined deposit intent %s of member %s: %s", intent_id, member_id, message)
                if intent_id:
                    self._cancel_quietly(intent_id)  # final: it can never be charged later
                return ProviderResult("failed", intent_id, message, code)
        return ProviderResult(deposit_status(intent.status), intent.id)

    def client_secret(self, reference):
        with _provider_errors("payment lookup", reference):
            return self._client().v1.payment_intents.retrieve(reference).client_secret or ""

    def retrieve_intent(self, reference: str) -> dict:
        with _provider_errors("payment lookup", reference):
            return self._client().v1.payment_intents.retrieve(reference).to_dict()

    # ------------------------------------------------------------ card authorizations

    def authorize(
        self, *, amount, currency, member_id, payment_method=None, customer="", idempotency_key=None, metadata=None
    ):
        with _provider_errors("authorization", member_id):
            try:
                intent = self._intent(
                    amount=amount,
                    currency=currency,
                    member_id=member_id,
                    payment_method=payment_method,
                    customer=customer,
                    idempotency_key=idempotency_key,
                    metadata={"purpose": "pool_pledge", **(metadata or {})},
                    manual=True,
                )
            except stripe.CardError as exc:
                message, code = _declined(exc)
                intent_id = getattr(exc, "intent_id", "")
                if intent_id:
                    self._cancel_quietly(intent_id)
                return ProviderResult("failed", intent_id, message, code)
        if intent.status == "requires_capture":
            return ProviderResult("authorized", intent.id)
        if intent.status in ("requires_action", "processing"):
            return ProviderResult("pending", intent.id)
        return ProviderResult("failed", intent.id, f"The card authorization ended {intent.status}.")

    def capture(self, reference, amount, *, idempotency_key):
        client = self._client()
        try:
            intent = client.v1.payment_intents.capture(
                reference, params={"amount_to_capture": amount}, options=_options(idempotency_key)
            )
        except (stripe.InvalidRequestError, stripe.CardError) as exc:
            # Already captured (a retry after a lost answer) is a success; anything else is final.
            with _provider_errors("capture", reference):
                intent = client.v1.payment_intents.retrieve(reference)
            if intent.status == "succeeded":
                return ProviderResult("succeeded", reference)
            return ProviderResult("failed", reference, exc.user_message or str(exc), exc.code or "")
        except stripe.StripeError as exc:
            raise ProviderUnavailable() from exc
        if intent.status == "succeeded":
            return ProviderResult("succeeded", reference)
        return ProviderResult("pending" if intent.status == "processing" else "failed", reference)

    def cancel(self, reference):
        client = self._client()
        try:
            client.v1.payment_intents.cancel(reference)
        except stripe.InvalidRequestError as exc:
            with _provider_errors("cancel", reference):
                intent = client.v1.payment_intents.retrieve(reference)
            if intent.status == "canceled":  # cancelled already (by us earlier, or expired at Stripe)
                return ProviderResult("succeeded", reference)
            return ProviderResult("failed", reference, exc.user_message or str(exc), intent.status)
        except stripe.StripeError as exc:
            raise ProviderUnavailable() from exc
        return ProviderResult("succeeded", reference)

    def list_authorizations(self, created_after):
        """Every uncaptured card hold Stripe still has, newest first, back to ``created_after`` (unix time)."""
        found = []
        for intent in self._iterate("payment_intents", created_after):
            if intent.get("status") == "requires_capture":
                found.append(intent)
        return found

    # ------------------------------------------------------------ money out

    def refund(self, *, source_reference, amount, currency, member_id, idempotency_key):
        try:
            refund = self._client().v1.refunds.create(
                params={
                    "payment_intent": source_reference,
                    "amount": amount,
                    "metadata": {"member_id": str(member_id), "purpose": "wallet_withdrawal"},
                },
                options=_options(idempotency_key),
            )
        except (stripe.CardError, stripe.InvalidRequestError) as exc:
            log.warning("Stripe refused a refund of %s for member %s: %s", source_reference, member_id, exc)
            return ProviderResult("failed", "", exc.user_message or str(exc), exc.code or "")
        except stripe.StripeError as exc:
            raise ProviderUnavailable() from exc
        return ProviderResult(refund_status(refund.status), refund.id)

    def refund_status(self, reference):
        with _provider_errors("refund lookup", reference):
            refund = self._client().v1.refunds.retrieve(reference)
        return ProviderResult(refund_status(refund.status), refund.id, getattr(refund, "failure_reason", None) or "")

    def payout(self, *, amount, currency, member_id, idempotency_key=None):
        try:
            payout = self._client().v1.payouts.create(
                params={
                    "amount": amount,
                    "currency": currency.lower(),
                    "description": f"Marketplace wallet withdrawal, member {member_id}",
                    "metadata": {"member_id": str(member_id), "purpose": "wallet_withdrawal"},
                },
                options=_options(idempotency_key),
            )
        except (stripe.CardError, stripe.InvalidRequestError) as exc:
            log.warning("Stripe refused a payout for member %s: %s", member_id, exc.user_message or exc)
            return ProviderResult("failed", "", exc.user_message or str(exc), exc.code or "")
        except stripe.StripeError as exc:
            log.exception("Stripe unavailable for a payout of member %s", member_id)
            raise ProviderUnavailable() from exc
        return ProviderResult(payout_status(payout.status), payout.id)

    # ------------------------------------------------------------ listing (reconciliation, sweeps)

    def _iterate(self, resource: str, created_after: int | None = None) -> Iterator[dict]:
        """Every object of a list endpoint as plain dicts, following pages.

        Stripe lists newest first: with ``created_after`` the walk stops at the
        first older object (no ``created`` filter is sent; not every
        Stripe-compatible server takes one).
        """
        service = getattr(self._client().v1, resource)
        with _provider_errors(f"{resource} list", "reconciliation"):
            page = service.list(params={"limit": 100})
            for obj in page.auto_paging_iter():
                data = obj.to_dict()
                if created_after is not None and (data.get("created") or 0) < created_after:
                    break
                yield data

    def all_payment_intents(self) -> list[dict]:
        return list(self._iterate("payment_intents"))

    def all_refunds(self) -> list[dict]:
        return list(self._iterate("refunds"))

    def all_payouts(self) -> list[dict]:
        return list(self._iterate("payouts"))

    def charge(self, charge_id: str) -> dict:
        with _provider_errors("charge lookup", charge_id):
            return self._client().v1.charges.retrieve(charge_id).to_dict()
