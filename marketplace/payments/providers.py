"""Payment providers behind one small interface.

``sandbox`` is offline and succeeds at once; it is the default and what the
demo and tests use. ``stripe`` (stripe_provider.py) talks to Stripe. A
provider answers whether money has really moved (``succeeded``), will be
confirmed later (``pending``) or did not move (``failed``); when it cannot be
reached it raises ``ProviderUnavailable`` and nothing is recorded.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from flask import current_app

from ..errors import DomainError


class ProviderUnavailable(DomainError):  # noqa: N818 - named like errors.py: the rule that broke
    """The payment provider could not be reached or refused our credentials: try again later."""

    status = 503
    reason = "provider_unavailable"
    default_message = "The payment provider is unavailable; please try again later."


@dataclass(frozen=True)
class ProviderResult:
    status: str  # "succeeded" | "pending" | "failed"
    reference: str


class PaymentProvider:
    name = "abstract"

    def collect(self, *, amount: int, currency: str, member_id: int, payment_method: str | None) -> ProviderResult:
        raise NotImplementedError

    def payout(self, *, amount: int, currency: str, member_id: int) -> ProviderResult:
        raise NotImplementedError


class SandboxProvider(PaymentProvider):
    """Instant and offline: every collection and payout succeeds."""

    name = "sandbox"

    def collect(self, *, amount, currency, member_id, payment_method=None):
        return ProviderResult("succeeded", "sbx_" + secrets.token_hex(8))

    def payout(self, *, amount, currency, member_id):
        return ProviderResult("succeeded", "sbx_po_" + secrets.token_hex(8))


def get_provider() -> PaymentProvider:
    name = current_app.config.get("PAYMENTS_PROVIDER", "sandbox")
    if name == "sandbox":
        return SandboxProvider()
    if name == "stripe":
        from .stripe_provider import StripeProvider

        return StripeProvider.from_config(current_app.config)
    raise RuntimeError(f"Unknown MARKETPLACE_PAYMENTS provider {name!r}")
