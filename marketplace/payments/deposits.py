"""Wallet deposits: one Payment row per provider payment, credited exactly once.

The API's answer and the provider's webhook may each be first to say a
payment succeeded, in either order, even at the same moment: both find (or
create) the same row by ``(provider, provider_ref)`` under a row lock — the
unique index makes two inserts collide, and the loser reads the winner's row
— and credit it only while it is not ``succeeded`` yet, through a ledger
entry whose idempotency key is the payment's id.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, text

from ..clock import now
from ..extensions import db
from ..ledger import services as ledger
from .models import Payment
from .rows import insert_ignoring_conflict

log = logging.getLogger(__name__)


def _locked(query) -> Payment | None:
    return db.session.execute(
        query.with_for_update(), execution_options={"populate_existing": True}
    ).scalar_one_or_none()


def lock_payment(payment_id: int) -> Payment | None:
    return _locked(select(Payment).where(Payment.id == payment_id))


def lock_by_reference(provider: str, reference: str) -> Payment | None:
    if not reference:
        return None
    return _locked(select(Payment).where(Payment.provider == provider, Payment.provider_ref == reference))


def find_by_reference(provider: str, reference: str) -> Payment | None:
    if not reference:
        return None
    return db.session.execute(
        select(Payment).where(Payment.provider == provider, Payment.provider_ref == reference)
    ).scalar_one_or_none()


def lock_or_create_deposit(
    provider: str, reference: str, *, member_id: int, amount: int, currency: str, payment_method: str = ""
) -> Payment:
    """The deposit the provider knows as ``reference``, locked; created ``pending`` if new.

    Runs inside the caller's transaction. ``reference`` must not be empty.
    """
    existing = lock_by_reference(provider, reference)
    if existing is not None:
        return existing
    insert_ignoring_conflict(
        Payment,
        {
            "member_id": member_id,
            "direction": "deposit",
            "amount": amount,
            "currency": currency,
            "provider": provider,
            "provider_ref": reference,
            "payment_method": (payment_method or "")[:120],
            "status": "pending",
            "created_at": now(),
        },
        ["provider", "provider_ref"],
        index_where=text("provider_ref <> ''"),
    )
    # Ours, or the other path's (API answer or webhook) that won the insert and has committed.
    return lock_by_reference(provider, reference)


def settle_deposit(payment: Payment) -> bool:
    """Credit the wallet for a locked deposit the provider says succeeded; False if already credited.

    A deposit recorded ``failed`` is still credited when the provider later
    confirms it collected the money: the money is there, so it is the member's.
    """
    if payment.status == "succeeded":
        return False
    if payment.status == "failed":
        log.warning("Deposit %s was failed but %s collected it after all: crediting it", payment.id, payment.provider)
    wallet = ledger.wallet_account(payment.member_id, payment.currency)
    external = ledger.external_account(payment.provider, payment.currency)
    entry = ledger.post_entry(
        "deposit",
        [(external, payment.amount), (wallet, -payment.amount)],
        memo=f"Deposit {payment.id} via {payment.provider}",
        idempotency_key=f"payment:{payment.id}:settle",
        actor_id=payment.member_id,
    )
    payment.entry_id = entry.id
    payment.status = "succeeded"
    payment.failure_message = None
    payment.settled_at = now()
    db.session.flush()
    return True


def fail_deposit(payment: Payment, message: str = "") -> bool:
    """A pending deposit the provider says did not (and will not) collect: nothing is credited."""
    if payment.status != "pending":
        return False
    payment.status = "failed"
    payment.failure_message = (message or "The payment provider did not collect the payment.")[:300]
    payment.settled_at = now()
    db.session.flush()
    return True


def apply_outcome(payment: Payment, status: str, message: str = "") -> None:
    if status == "succeeded":
        settle_deposit(payment)
    elif status == "failed":
        fail_deposit(payment, message)
