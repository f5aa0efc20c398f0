"""Wallets: balances, deposits, withdrawals and history, all through the ledger."""

from __future__ import annotations

from sqlalchemy import select

from ..clock import now
from ..db import transaction
from ..errors import LedgerInvariantError, NotFound
from ..extensions import db
from ..ledger.models import Account, JournalEntry, Posting
from ..payments import customers, deposits, payouts
from ..payments.models import Payment
from ..payments.providers import get_provider
from ..texts import N_, Msg


def balances(member_id: int) -> list[dict]:
    accounts = db.session.execute(
        select(Account).where(Account.member_id == member_id, Account.kind == "wallet").order_by(Account.currency)
    ).scalars()
    return [
        {"currency": a.currency, "balance": a.balance, "held": a.held, "available": a.balance - a.held}
        for a in accounts
    ]


def deposit(
    member_id: int,
    amount: int,
    currency: str,
    payment_method: str | None = None,
    *,
    idempotency_key: str | None = None,
    card_token: str | None = None,
) -> Payment:
    """Collect money through the provider; credit the wallet once it succeeds.

    The provider is called before anything is written (no row locks are held
    during the call). Our ``idempotency_key`` goes to the provider, so a retry
    after a lost answer reuses the same provider payment; the deposit row is
    found or created by the provider's reference, so the API answer and the
    provider's webhook credit it exactly once, whichever comes first.
    """
    provider = get_provider()
    customer = customers.customer_for(member_id, provider)
    if card_token:
        payment_method = provider.attach_card_token(customer=customer, token=card_token)
    key = f"marketplace-deposit-{member_id}-{idempotency_key}" if idempotency_key else None
    result = provider.collect(
        amount=amount,
        currency=currency,
        member_id=member_id,
        payment_method=payment_method,
        customer=customer,
        idempotency_key=key,
    )
    with transaction():
        if result.reference:
            payment = deposits.lock_or_create_deposit(
                provider.name,
                result.reference,
                member_id=member_id,
                amount=amount,
                currency=currency,
                payment_method=payment_method or "",
            )
        else:  # refused before the provider made a payment object
            payment = Payment(
                member_id=member_id,
                direction="deposit",
                amount=amount,
                currency=currency,
                provider=provider.name,
                provider_ref="",
                payment_method=(payment_method or "")[:120],
                status="pending",
                created_at=now(),
            )
            db.session.add(payment)
            db.session.flush()
        if payment.member_id != member_id or payment.amount != amount or payment.currency != currency:
            raise LedgerInvariantError(f"provider payment {result.reference} belongs to another deposit")
        deposits.apply_outcome(payment, result.status, result.message)
    return payment


def confirm_deposit(payment_id: int, succeeded: bool, message: str = "") -> Payment:
    """Provider callback: settle or fail a deposit (exactly once)."""
    with transaction():
        payment = deposits.lock_payment(payment_id)
        if payment is None:
            raise NotFound(Msg(N_("No payment %(id)s."), id=payment_id))
        deposits.apply_outcome(payment, "succeeded" if succeeded else "failed", message)
    return payment


def withdraw(member_id: int, amount: int, currency: str) -> Payment:
    """Debit the wallet at once; refund card deposits newest first, queue the rest for an operator."""
    return payouts.withdraw(member_id, amount, currency)


def withdrawal_parts(payment_id: int):
    return payouts.parts_of(payment_id)


def get_payment(member_id: int, payment_id: int) -> Payment:
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.member_id != member_id:
        raise NotFound(Msg(N_("No payment %(id)s."), id=payment_id))
    return payment


def recent_withdrawals(member_id: int, limit: int = 5) -> list[Payment]:
    return list(
        db.session.execute(
            select(Payment)
            .where(Payment.member_id == member_id, Payment.direction == "withdrawal")
            .order_by(Payment.id.desc())
            .limit(limit)
        ).scalars()
    )


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
    """The payment a provider knows as ``ref`` (a Stripe PaymentIntent id), or None."""
    return deposits.find_by_reference(provider, ref)
