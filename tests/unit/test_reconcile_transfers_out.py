"""Refunds and payouts the ledger sent against Stripe's own lists (payments.reconcile, no Stripe needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from marketplace.payments.reconcile import Difference, _check_transfers_out


def part(amount: int, status: str) -> SimpleNamespace:
    return SimpleNamespace(currency="EUR", amount=amount, status=status)


@pytest.mark.parametrize(("kind", "done"), [("refund", "succeeded"), ("payout", "paid")])
def test_every_disagreement_is_listed_once_and_agreement_is_silent(kind, done):
    verb = "refunded" if kind == "refund" else "paid"
    parts = {
        "agrees": part(100, "paid"),
        "missing": part(200, "sent"),
        "amount": part(300, "paid"),
        "unsettled_here": part(400, "sent"),
        "unsettled_there": part(500, "paid"),
    }
    stripe = [
        {"id": "agrees", "amount": 100, "status": done},
        {"id": "amount", "amount": 301, "status": done},
        {"id": "unsettled_here", "amount": 400, "status": done},
        {"id": "unsettled_there", "amount": 500, "status": "pending"},
        {"id": "stray", "amount": 600, "currency": "eur", "status": done, "metadata": {"purpose": "wallet_withdrawal"}},
        {"id": "other", "amount": 700, "currency": "eur", "status": done, "metadata": {"purpose": "something else"}},
    ]
    found: list[Difference] = []
    _check_transfers_out(kind, parts, stripe, done, found.append)
    assert found == [
        Difference(kind, "amount", "EUR", 300, 301, "amounts differ"),
        Difference(kind, "missing", "EUR", 200, None, "missing at Stripe"),
        Difference(kind, "unsettled_here", "EUR", 0, 400, f"{verb} at Stripe, not settled yet"),
        Difference(kind, "unsettled_there", "EUR", 500, 0, "settled in the ledger, pending at Stripe"),
        Difference(kind, "stray", "EUR", None, 600, f"withdrawal {kind} not in the ledger"),
    ]
