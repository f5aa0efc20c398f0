"""Payment providers behind one small interface.

``sandbox`` is offline and succeeds at once; it is the default and what the
demo and tests use. A provider answers whether money has really moved
(``succeeded``) or will be confirmed later (``pending``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from flask import current_app


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
