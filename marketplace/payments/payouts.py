"""Withdrawals: refunds to the member's own card deposits first, then an operator-approved payout.

A withdrawal moves the amount from the wallet to the member's pending-payouts
account at once (so it cannot be spent twice) and splits it into parts:
refunds of the member's earlier deposits, newest first, each up to what that
deposit can still refund, and one manual payout part for any remainder,
queued for an operator. A part's money leaves the pending-payouts account
only when the provider confirms it (pending-payouts -> external), or goes
back to the wallet when an operator rejects it: it never vanishes.

Provider calls run after the recording transaction has committed
(``outbox.run_after_commit``); a refund part is claimed (``pending`` ->
``sent``) in its own committed step first, so two senders never both call.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import func, select

from ..clock import now
from ..db import transaction
from ..errors import InvalidState, NotFound
from ..extensions import db
from ..ledger import services as ledger
from ..notifications.services import notify
from ..operators.services import record_audit
from ..texts import N_, Money, Msg, by_status
from . import outbox
from .models import Payment, PayoutPart
from .providers import ProviderUnavailable, get_provider, provider_named

log = logging.getLogger(__name__)

LIVE_REFUND_STATUSES = ("pending", "sent", "paid")  # refund parts that count against a deposit
UNSENT_GRACE = timedelta(minutes=10)  # a claimed refund without a provider id this old is re-sent


def pending_payouts_code(member_id: int, currency: str) -> str:
    return f"member:{member_id}:pending_payouts:{currency}"


def pending_payouts_account(member_id: int, currency: str):
    return ledger.ensure_account(pending_payouts_code(member_id, currency), currency, "pending_payouts", member_id)


# ---------------------------------------------------------------- allocation


def refundable_deposits(member_id: int, currency: str, provider: str) -> list[tuple[str, int]]:
    """``(payment reference, amount still refundable)`` of the member's card deposits, newest first."""
    deposits = db.session.execute(
        select(Payment.provider_ref, Payment.amount)
        .where(
            Payment.member_id == member_id,
            Payment.direction == "deposit",
            Payment.status == "succeeded",
            Payment.provider == provider,
            Payment.currency == currency,
            Payment.provider_ref != "",
        )
        .order_by(Payment.settled_at.desc(), Payment.id.desc())
    ).all()
    if not deposits:
        return []
    refunded = dict(
        db.session.execute(
            select(PayoutPart.source_ref, func.sum(PayoutPart.amount))
            .where(
                PayoutPart.provider == provider,
                PayoutPart.method == "refund",
                PayoutPart.status.in_(LIVE_REFUND_STATUSES),
                PayoutPart.source_ref.in_([ref for ref, _ in deposits]),
            )
            .group_by(PayoutPart.source_ref)
        ).all()
    )
    return [(ref, amount - int(refunded.get(ref) or 0)) for ref, amount in deposits]


def split_withdrawal(amount: int, refundable: list[tuple[str, int]]) -> tuple[list[tuple[str, int]], int]:
    """Refunds ``(reference, amount)`` taken newest first, and the remainder for a manual payout."""
    refunds, left = [], amount
    for reference, available in refundable:
        if left == 0:
            break
        take = min(left, available)
        if take > 0:
            refunds.append((reference, take))
            left -= take
    return refunds, left


# ---------------------------------------------------------------- withdrawing


def withdraw(member_id: int, amount: int, currency: str) -> Payment:
    """Debit the wallet into pending payouts, split into refunds + manual payout, send the refunds."""
    provider = get_provider()
    with transaction():
        wallet = ledger.wallet_account(member_id, currency)
        pending = pending_payouts_account(member_id, currency)
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
        # Locks the wallet row first: the member's withdrawals allocate one after another.
        entry = ledger.post_entry(
            "withdrawal",
            [(wallet, amount), (pending, -amount)],
            memo=f"Withdrawal {payment.id}: waiting for the payment provider",
            idempotency_key=f"payment:{payment.id}:settle",
            actor_id=member_id,
        )
        payment.entry_id = entry.id
        refunds, remainder = split_withdrawal(amount, refundable_deposits(member_id, currency, provider.name))
        for reference, part_amount in refunds:
            db.session.add(_part(payment, "refund", part_amount, "pending", source_ref=reference))
        if remainder:
            db.session.add(_part(payment, "manual", remainder, "queued"))
        db.session.flush()
        payment_id = payment.id
    outbox.run_after_commit(lambda: send_refunds(payment_id))
    if not outbox.in_outer_transaction():
        db.session.refresh(payment)
    return payment


def _part(payment: Payment, method: str, amount: int, status: str, **extra) -> PayoutPart:
    return PayoutPart(
        payment_id=payment.id,
        member_id=payment.member_id,
        method=method,
        amount=amount,
        currency=payment.currency,
        provider=payment.provider,
        status=status,
        created_at=now(),
        **extra,
    )


def parts_of(payment_id: int) -> list[PayoutPart]:
    return list(
        db.session.execute(select(PayoutPart).where(PayoutPart.payment_id == payment_id).order_by(PayoutPart.id))
        .scalars()
        .all()
    )


def _lock_part(part_id: int) -> PayoutPart:
    part = db.session.execute(
        select(PayoutPart).where(PayoutPart.id == part_id).with_for_update(),
        execution_options={"populate_existing": True},
    ).scalar_one_or_none()
    if part is None:
        raise NotFound(Msg(N_("No payout %(id)s."), id=part_id))
    return part


# ---------------------------------------------------------------- refunds


def send_refunds(payment_id: int | None = None, *, part_ids: list[int] | None = None) -> dict:
    """Send every unsent refund part (of one withdrawal, or the given ones); returns counts."""
    query = select(PayoutPart.id).where(PayoutPart.method == "refund", PayoutPart.status == "pending")
    if payment_id is not None:
        query = query.where(PayoutPart.payment_id == payment_id)
    if part_ids is not None:
        query = query.where(PayoutPart.id.in_(part_ids))
    counts: dict[str, int] = defaultdict(int)
    for part_id in list(db.session.execute(query.order_by(PayoutPart.id)).scalars()):
        if not _claim(part_id):
            continue
        counts[_send_refund(part_id)] += 1
    return dict(counts)


def _claim(part_id: int) -> bool:
    with transaction():
        part = _lock_part(part_id)
        if part.status != "pending":
            return False
        part.status = "sent"
        part.reviewed_at = now()  # when it was claimed: the sweep re-sends a claim that never got an answer
    return True


def _send_refund(part_id: int) -> str:
    part = db.session.get(PayoutPart, part_id)
    try:
        result = provider_named(part.provider).refund(
            source_reference=part.source_ref,
            amount=part.amount,
            currency=part.currency,
            member_id=part.member_id,
            idempotency_key=f"marketplace-refund-part-{part.id}",
        )
    except ProviderUnavailable:
        with transaction():
            part = _lock_part(part_id)
            if part.status == "sent" and not part.provider_ref:
                part.status = "pending"  # not sent after all: the sweep tries again
        return "unavailable"
    with transaction():
        part = _lock_part(part_id)
        if part.status != "sent":
            return part.status
        if result.reference:
            part.provider_ref = result.reference
        apply_part_outcome(part, result.status, result.message)
        return part.status


def apply_part_outcome(part: PayoutPart, status: str, message: str = "") -> None:
    """The provider's word on a locked, sent part: paid, failed (-> manual queue) or still pending."""
    if part.status != "sent":
        return
    if status == "succeeded":
        settle_part(part)
    elif status == "failed":
        fail_part(part, message)


def settle_part(part: PayoutPart) -> None:
    """The provider paid this part: pending payouts -> the provider's cash account."""
    pending = pending_payouts_account(part.member_id, part.currency)
    external = ledger.external_account(part.provider, part.currency)
    kind = "refund" if part.method == "refund" else "payout"
    entry = ledger.post_entry(
        kind,
        [(pending, part.amount), (external, -part.amount)],
        memo=f"Withdrawal {part.payment_id}: {kind} {part.provider_ref or part.id} paid",
        idempotency_key=f"payout-part:{part.id}:paid",
        actor_id=part.member_id,
    )
    part.status = "paid"
    part.settle_entry_id = entry.id
    part.settled_at = now()
    db.session.flush()
    refresh_withdrawal(part.payment_id)


def fail_part(part: PayoutPart, message: str = "") -> PayoutPart:
    """The provider could not pay this part: a queued manual payout takes over its amount."""
    part.status = "failed"
    part.failure_message = (message or "The payment provider could not pay this out.")[:300]
    part.settled_at = now()
    replacement = PayoutPart(
        payment_id=part.payment_id,
        member_id=part.member_id,
        method="manual",
        amount=part.amount,
        currency=part.currency,
        provider=part.provider,
        status="queued",
        replaces_id=part.id,
        created_at=now(),
    )
    db.session.add(replacement)
    db.session.flush()
    template = (
        N_(
            "A refund to your card of %(amount)s could not be made. It is queued for an operator to pay out "
            "to you; the money is safe in the meantime."
        )
        if part.method == "refund"
        else N_(
            "A payout of %(amount)s could not be made. It is queued for an operator to pay out to you; "
            "the money is safe in the meantime."
        )
    )
    notify(part.member_id, "payout_delayed", Msg(template, amount=Money(part.amount, part.currency)), "/wallet")
    refresh_withdrawal(part.payment_id)
    return replacement


def refresh_withdrawal(payment_id: int) -> None:
    """A withdrawal is pending while any part is; then succeeded, or failed if every part came back."""
    payment = db.session.get(Payment, payment_id)
    live = [p for p in parts_of(payment_id) if p.status != "failed"]
    if any(p.status in ("pending", "sent", "queued") for p in live):
        status = "pending"
    elif live and all(p.status == "returned" for p in live):
        status = "failed"
    else:
        status = "succeeded"
    if payment.status != status:
        payment.status = status
        payment.settled_at = now() if status != "pending" else None
        db.session.flush()


# ---------------------------------------------------------------- the manual queue (operators)


def queued_parts(limit: int = 200) -> list[PayoutPart]:
    return list(
        db.session.execute(
            select(PayoutPart).where(PayoutPart.status == "queued").order_by(PayoutPart.id).limit(limit)
        ).scalars()
    )


def recent_manual_parts(limit: int = 50) -> list[PayoutPart]:
    return list(
        db.session.execute(
            select(PayoutPart)
            .where(PayoutPart.method == "manual", PayoutPart.status != "queued")
            .order_by(PayoutPart.id.desc())
            .limit(limit)
        ).scalars()
    )


_NOT_WAITING = {
    "pending": N_("Payout %(id)s is pending, not waiting for approval."),
    "sent": N_("Payout %(id)s is sent, not waiting for approval."),
    "paid": N_("Payout %(id)s is paid, not waiting for approval."),
    "failed": N_("Payout %(id)s is failed, not waiting for approval."),
    "returned": N_("Payout %(id)s is returned, not waiting for approval."),
}


def _not_waiting(part_id: int, status: str) -> Msg | str:
    return by_status(_NOT_WAITING, status, f"Payout {part_id} is {status}, not waiting for approval.", id=part_id)


def approve_payout(part_id: int, operator_id: int, *, ip: str = "") -> PayoutPart:
    """An operator approves a queued payout: the provider pays it out (confirmed now or by webhook)."""
    with transaction():
        part = _lock_part(part_id)
        if part.method != "manual" or part.status != "queued":
            raise InvalidState(_not_waiting(part_id, part.status))
        part.status = "sent"
        part.reviewed_by = operator_id
        part.reviewed_at = now()
        part.failure_message = None
        record_audit(
            operator_id,
            "payout.approve",
            "payout_part",
            part.id,
            {"member_id": part.member_id, "amount": part.amount, "currency": part.currency},
            ip=ip,
        )
    try:
        result = provider_named(part.provider).payout(
            amount=part.amount,
            currency=part.currency,
            member_id=part.member_id,
            idempotency_key=f"marketplace-payout-part-{part.id}",
        )
    except ProviderUnavailable:
        _back_to_queue(part_id, "The payment provider was unavailable; approve it again later.")
        raise
    with transaction():
        part = _lock_part(part_id)
        if result.status == "failed":
            part.status = "queued"
            part.failure_message = (result.message or "The payment provider refused the payout.")[:300]
            record_audit(
                operator_id, "payout.refused", "payout_part", part.id, {"message": part.failure_message}, ip=ip
            )
        else:
            part.provider_ref = result.reference
            apply_part_outcome(part, result.status)
    return part


def _back_to_queue(part_id: int, message: str) -> None:
    with transaction():
        part = _lock_part(part_id)
        if part.status == "sent" and not part.provider_ref:
            part.status = "queued"
            part.failure_message = message


def reject_payout(part_id: int, operator_id: int, *, reason: str = "", ip: str = "") -> PayoutPart:
    """An operator rejects a queued payout: its money goes back to the member's wallet."""
    with transaction():
        part = _lock_part(part_id)
        if part.method != "manual" or part.status != "queued":
            raise InvalidState(_not_waiting(part_id, part.status))
        pending = pending_payouts_account(part.member_id, part.currency)
        wallet = ledger.wallet_account(part.member_id, part.currency)
        entry = ledger.post_entry(
            "withdrawal_returned",
            [(pending, part.amount), (wallet, -part.amount)],
            memo=f"Withdrawal {part.payment_id}: payout {part.id} rejected, money back in the wallet",
            idempotency_key=f"payout-part:{part.id}:returned",
            actor_id=operator_id,
        )
        part.status = "returned"
        part.settle_entry_id = entry.id
        part.reviewed_by = operator_id
        part.reviewed_at = part.settled_at = now()
        part.failure_message = reason[:300] or None
        record_audit(
            operator_id,
            "payout.reject",
            "payout_part",
            part.id,
            {"member_id": part.member_id, "amount": part.amount, "currency": part.currency, "reason": reason},
            ip=ip,
        )
        amount = Money(part.amount, part.currency)
        notify(
            part.member_id,
            "payout_returned",
            Msg(
                N_("A payout of %(amount)s was not made (%(reason)s). The money is back in your wallet."),
                amount=amount,
                reason=reason,
            )
            if reason
            else Msg(N_("A payout of %(amount)s was not made. The money is back in your wallet."), amount=amount),
            "/wallet",
        )
        db.session.flush()
        refresh_withdrawal(part.payment_id)
    return part


# ---------------------------------------------------------------- provider events and the sweep


def part_by_provider_ref(provider: str, reference: str) -> PayoutPart | None:
    if not reference:
        return None
    part_id = db.session.execute(
        select(PayoutPart.id).where(PayoutPart.provider == provider, PayoutPart.provider_ref == reference)
    ).scalar_one_or_none()
    return _lock_part(part_id) if part_id is not None else None


def sent_refunds_of(provider: str, source_ref: str) -> list[int]:
    return list(
        db.session.execute(
            select(PayoutPart.id).where(
                PayoutPart.provider == provider,
                PayoutPart.method == "refund",
                PayoutPart.status == "sent",
                PayoutPart.source_ref == source_ref,
                PayoutPart.provider_ref != "",
            )
        ).scalars()
    )


def check_sent_refunds(part_ids: list[int]) -> int:
    """Ask the provider about sent refunds and settle or fail them; returns how many changed."""
    changed = 0
    for part_id in part_ids:
        part = db.session.get(PayoutPart, part_id)
        try:
            result = provider_named(part.provider).refund_status(part.provider_ref)
        except ProviderUnavailable:
            continue
        with transaction():
            part = _lock_part(part_id)
            before = part.status
            apply_part_outcome(part, result.status, result.message)
            changed += part.status != before
    return changed


def sweep_payouts(moment) -> dict:
    """Run-due: send unsent refunds, re-send claims that never got an answer, poll sent refunds."""
    stale = list(
        db.session.execute(
            select(PayoutPart.id).where(
                PayoutPart.method == "refund",
                PayoutPart.status == "sent",
                PayoutPart.provider_ref == "",
                PayoutPart.reviewed_at <= moment - UNSENT_GRACE,
            )
        ).scalars()
    )
    for part_id in stale:
        with transaction():
            part = _lock_part(part_id)
            if part.status == "sent" and not part.provider_ref:
                part.status = "pending"  # re-sent with the same idempotency key: paid at most once
    sent = send_refunds()
    polled = list(
        db.session.execute(
            select(PayoutPart.id).where(
                PayoutPart.method == "refund", PayoutPart.status == "sent", PayoutPart.provider_ref != ""
            )
        ).scalars()
    )
    return {"refunds_sent": sum(sent.values()), "refunds_confirmed": check_sent_refunds(polled)}


def _register_jobs() -> None:
    from ..operators.jobs import due_job

    due_job("payouts")(sweep_payouts)


_register_jobs()
