"""Payment providers behind one small interface.

``sandbox`` is offline and succeeds at once; it is the default and what the
demo and tests use. ``stripe`` (stripe_provider.py) talks to Stripe. A
provider answers whether money has really moved (``succeeded``), will be
confirmed later (``pending``), is held on the card (``authorized``) or did
not move (``failed``, with the provider's message); when it cannot be
reached it raises ``ProviderUnavailable`` and nothing is recorded.

Every call that creates something at the provider takes an
``idempotency_key``: the same key gives the same object, so a retried
request never pays twice.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from flask import current_app

from ..errors import DomainError, ValidationFailed
from ..texts import N_, Msg


class ProviderUnavailable(DomainError):  # noqa: N818 - named like errors.py: the rule that broke
    """The payment provider could not be reached or refused our credentials: try again later."""

    status = 503
    reason = "provider_unavailable"
    default_message = N_("The payment provider is unavailable; please try again later.")


class CardDeclined(DomainError):  # noqa: N818 - the rule that broke
    """The card issuer (or the provider) refused to authorize the amount."""

    status = 402
    reason = "card_declined"
    default_message = N_("Your card was declined.")


class CardNeedsAuthentication(DomainError):  # noqa: N818 - the rule that broke
    status = 409
    reason = "card_authentication_required"
    default_message = N_(
        "This card needs the cardholder to authenticate (3-D Secure), which a card-backed pledge "
        "cannot do; pledge with wallet funds, or deposit with this card first."
    )


@dataclass(frozen=True)
class ProviderResult:
    status: str  # "succeeded" | "pending" | "authorized" | "failed"
    reference: str
    message: str = ""
    code: str = ""


class PaymentProvider:
    name = "abstract"
    uses_customers = False

    def create_customer(self, *, member_id: int, email: str, name: str) -> str:
        return ""

    def attach_card_token(self, *, customer: str, token: str) -> str:
        """Save a card tokenized in the browser to the customer; return its payment method id."""
        raise ValidationFailed(
            "This payment provider takes no card tokens.", errors={"payment_method": [Msg(N_("Not a card provider."))]}
        )

    def saved_cards(self, customer: str) -> list[dict]:
        """``[{"id", "brand", "last4", "exp_month", "exp_year"}]`` for the payment page."""
        return []

    def collect(
        self,
        *,
        amount: int,
        currency: str,
        member_id: int,
        payment_method: str | None,
        customer: str = "",
        idempotency_key: str | None = None,
    ) -> ProviderResult:
        raise NotImplementedError

    def client_secret(self, reference: str) -> str:
        """What the browser needs to finish a ``pending`` payment (3-D Secure)."""
        return ""

    def authorize(
        self,
        *,
        amount: int,
        currency: str,
        member_id: int,
        payment_method: str | None,
        customer: str = "",
        idempotency_key: str | None = None,
        metadata: dict | None = None,
    ) -> ProviderResult:
        """Hold ``amount`` on the card (capture later): ``authorized``, ``failed`` or ``pending`` (needs 3-D Secure)."""
        raise NotImplementedError

    def capture(self, reference: str, amount: int, *, idempotency_key: str) -> ProviderResult:
        """Capture ``amount`` (at most the authorized amount) of an authorization: ``succeeded`` or ``failed``."""
        raise NotImplementedError

    def cancel(self, reference: str) -> ProviderResult:
        """Release an authorization (or an unfinished payment): ``succeeded`` once it is cancelled."""
        raise NotImplementedError

    def refund(
        self, *, source_reference: str, amount: int, currency: str, member_id: int, idempotency_key: str
    ) -> ProviderResult:
        """Refund part of an earlier collected payment: ``succeeded``, ``pending`` or ``failed``."""
        raise NotImplementedError

    def refund_status(self, reference: str) -> ProviderResult:
        raise NotImplementedError

    def payout(self, *, amount: int, currency: str, member_id: int, idempotency_key: str | None = None):
        raise NotImplementedError

    def list_authorizations(self, created_after: int) -> list[dict]:
        """Authorizations the provider still holds (``[{"id", "amount", "created", "metadata"}]``)."""
        return []


class SandboxProvider(PaymentProvider):
    """Instant and offline: every collection, authorization, capture, refund and payout succeeds."""

    name = "sandbox"

    def collect(self, *, amount, currency, member_id, payment_method=None, customer="", idempotency_key=None):
        return ProviderResult("succeeded", "sbx_" + secrets.token_hex(8))

    def authorize(
        self, *, amount, currency, member_id, payment_method=None, customer="", idempotency_key=None, metadata=None
    ):
        return ProviderResult("authorized", "sbx_auth_" + secrets.token_hex(8))

    def capture(self, reference, amount, *, idempotency_key):
        return ProviderResult("succeeded", reference)

    def cancel(self, reference):
        return ProviderResult("succeeded", reference)

    def refund(self, *, source_reference, amount, currency, member_id, idempotency_key):
        return ProviderResult("succeeded", "sbx_re_" + secrets.token_hex(8))

    def refund_status(self, reference):
        return ProviderResult("succeeded", reference)

    def payout(self, *, amount, currency, member_id, idempotency_key=None):
        return ProviderResult("succeeded", "sbx_po_" + secrets.token_hex(8))


def get_provider() -> PaymentProvider:
    """The provider new payments go through (``MARKETPLACE_PAYMENTS``)."""
    return provider_named(current_app.config.get("PAYMENTS_PROVIDER", "sandbox"))


def provider_named(name: str) -> PaymentProvider:
    """A provider by name: the one that made a payment is the one to refund, capture or cancel it."""
    if name == "sandbox":
        return SandboxProvider()
    if name == "stripe":
        from .stripe_provider import StripeProvider

        return StripeProvider.from_config(current_app.config)
    raise RuntimeError(f"Unknown MARKETPLACE_PAYMENTS provider {name!r}")
