"""Wallets: balances, deposits, withdrawals and history, all through the ledger."""

from __future__ import annotations

from sqlalchemy import select

from ..clock import now
from ..db import transaction
from ..errors import InvalidState
from ..extensions import db
from ..ledger import services as ledger
from ..ledger.models import Account, JournalEntry, Posting
from ..payments.models import Payment
from ..payments.providers import get_provider


def balances(member_id: int) -> list[dict]:
    accounts = db.session.execute(
        select(Account).where(Account.member_id == member_id, Account.kind == "wallet").order_by(Account.currency)
    ).scalars()
    return [
        {"currency": a.currency, "balance": a.balance, "held": a.held, "available": a.balance - a.held}
        for a in accounts
    ]


def deposit(member_id: int, amount: int, currency: str, payment_method: str | None = None) -> Payment:
    """Collect money through the provider; credit the wallet once it succeeds."""
    provider = get_provider()
    result = provider.collect(amount=amount, currency=currency, member_id=member_id, payment_method=payment_method)
    with transaction():
        payment = Payment(
            member_id=member_id,
            direction="deposit",
            amount=amount,
            currency=currency,
            provider=provider.name,
            provider_ref=result.reference,
            payment_method=(payment_method or "")[:120],
            status="pending",
            created_at=now(),
        )
        db.session.add(payment)
        db.session.flush()
        if result.status == "succeeded":
            _settle_deposit(payment)
        elif result.status == "failed":
            payment.status = "failed"
            payment.settled_at = now()
    return payment


def _settle_deposit(payment: Payment) -> None:
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
    payment.settled_at = now()


def confirm_deposit(payment_id: int, succeeded: bool) -> Payment:
    """Provider callback: settle or fail a pending deposit (exactly once)."""
    with transaction():
        payment = db.session.execute(select(Payment).where(Payment.id == payment_id).with_for_update()).scalar_one()
        if payment.status != "pending":
            return payment
        if succeeded:
            _settle_deposit(payment)
        else:
            payment.status = "failed"
            payment.settled_at = now()
    return payment


def withdraw(member_id: int, amount: int, currency: str) -> Payment:
    """Debit the wallet first (so the money cannot be spent twice), then pay out."""
    provider = get_provider()
    with transaction():
        wallet = ledger.wallet_account(member_id, currency)
        external = ledger.external_account(provider.name, currency)
        payment = Payment(
            member_id=member_id,
            direction="withdrawal",
            amount=amount,
            currency=currency,
            provider=provider.name,
            status="pending",
            created_at=now(),
        )
        db.session.add(payment)
        db.session.flush()
        entry = ledger.post_entry(
            "withdrawal",
            [(wallet, amount), (external, -amount)],
            memo=f"Withdrawal {payment.id} via {provider.name}",
            idempotency_key=f"payment:{payment.id}:settle",
            actor_id=member_id,
        )
        result = provider.payout(amount=amount, currency=currency, member_id=member_id)
        if result.status == "failed":
            raise InvalidState("The payment provider refused the payout.", reason="payout_failed")
        payment.entry_id = entry.id
        payment.provider_ref = result.reference
        payment.status = result.status
        payment.settled_at = now() if result.status == "succeeded" else None
    return payment


def transactions(member_id: int, *, limit: int | None = None, offset: int = 0, currency: str | None = None):
    """The member's wallet movements, newest first, as dicts; and the total count."""
    base = (
        select(Posting, JournalEntry, Account)
        .join(JournalEntry, Posting.entry_id == JournalEntry.id)
        .join(Account, Posting.account_id == Account.id)
        .where(Account.member_id == member_id, Account.kind == "wallet")
    )
    if currency:
        base = base.where(Account.currency == currency)
    query = base.order_by(Posting.id.desc()).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    rows = []
    for posting, entry, account in db.session.execute(query):
        rows.append(
            {
                "id": posting.id,
                "entry_id": entry.id,
                "created_at": entry.created_at,
                "kind": entry.kind,
                "amount": -posting.amount if account.normal_side == "credit" else posting.amount,
                "currency": account.currency,
                "balance_after": posting.balance_after,
                "memo": entry.memo,
            }
        )
    return rows


def count_transactions(member_id: int) -> int:
    from sqlalchemy import func

    return db.session.execute(
        select(func.count(Posting.id))
        .join(Account, Posting.account_id == Account.id)
        .where(Account.member_id == member_id, Account.kind == "wallet")
    ).scalar_one()


def find_payment_by_ref(provider: str, ref: str) -> Payment | None:
    """The payment a provider knows as ``ref`` (a Stripe PaymentIntent or Payout id), or None."""
    if not ref:
        return None
    return (
        db.session.execute(
            select(Payment).where(Payment.provider == provider, Payment.provider_ref == ref).order_by(Payment.id)
        )
        .scalars()
        .first()
    )
