"""Loans: disbursement of a fully funded request, reading, presenting, payoff quotes.

Disbursement (one transaction with the match that completed the request):

1. each reserved part's hold is captured into the part's claim account
   ``loan:{loan}:part:{part}:{cur}`` (the lender's wallet gives the money, the
   lender now holds a claim on the loan);
2. one entry books the loan: the receivable ``loan:{loan}:receivable:{cur}``
   is debited the whole amount, the borrower's wallet credited the amount
   less ``ORIGINATION_FEE_BPS``, the platform's fee account the fee;
3. every part's own annuity schedule and the loan's (row k = sum of the
   parts' row k) are written; installment k is due k months after today.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from ..bulk import bulk_insert
from ..clock import now, today
from ..errors import Forbidden, NotFound
from ..extensions import db
from ..ledger import services as ledger
from ..ledger.settlement import settle_holds
from ..money import fee as fee_of
from ..money import format_amount
from ..notifications.services import notify, notify_many
from ..texts import N_, Money, Msg, N_plural, Rate
from . import amortization
from .models import Installment, LenderCashFlow, Loan, LoanPart, LoanRequest, PartInstallment

# ---------------------------------------------------------------- accounts


def receivable_account(loan: Loan):
    return ledger.ensure_account(loan.receivable_code, loan.currency, "loan", loan.borrower_id)


def claim_account(part: LoanPart):
    return ledger.ensure_account(part.claim_code(), part.currency, "loan_part", part.lender_id)


# ---------------------------------------------------------------- disbursement


def disburse(request: LoanRequest) -> Loan:
    """Turn a fully funded request into a loan and pay it out (inside the caller's transaction)."""
    parts = list(
        db.session.execute(
            select(LoanPart)
            .where(LoanPart.request_id == request.id, LoanPart.status == "reserved")
            .order_by(LoanPart.id)
        ).scalars()
    )
    if sum(p.amount for p in parts) != request.amount:
        raise RuntimeError(f"request {request.id}: parts do not add up to the amount")
    pairs = [(p.amount, p.rate_bps) for p in parts]
    part_rows, loan_rows = amortization.loan_schedule(pairs, request.term_months)
    fee = fee_of(request.amount, current_app.config["ORIGINATION_FEE_BPS"])
    moment = now()
    start = moment.date()
    loan = Loan(
        request_id=request.id,
        borrower_id=request.borrower_id,
        amount=request.amount,
        currency=request.currency,
        term_months=request.term_months,
        rate_bps=amortization.weighted_rate(pairs),
        apr_bps=amortization.apr_bps(request.amount - fee, [row.total for row in loan_rows]),
        fee=fee,
        status="active",
        disbursed_at=moment,
        outstanding_principal=request.amount,
    )
    db.session.add(loan)
    db.session.flush()

    claims = []
    for part in parts:
        part.loan_id = loan.id
        part.status = "active"
        part.outstanding_principal = part.amount
        claims.append(claim_account(part).id)
    settle_holds(
        [(part.hold_id, part.amount, claim) for part, claim in zip(parts, claims, strict=True)],
        [],
        None,
        kind="loan_funding",
        memo=f"Loan {loan.id}: part funded",
    )
    wallet = ledger.wallet_account(request.borrower_id, request.currency)
    postings = [(receivable_account(loan), request.amount), (wallet, -(request.amount - fee))]
    if fee:
        postings.append((ledger.fees_account(request.currency), -fee))
    ledger.post_entry(
        "loan_disbursement",
        postings,
        memo=f"Loan {loan.id}: {format_amount(request.amount, request.currency)} less origination fee "
        f"{format_amount(fee, request.currency)}",
    )

    dates = amortization.due_dates(start, request.term_months)
    bulk_insert(
        Installment.__table__,
        [
            {
                "loan_id": loan.id,
                "number": row.number,
                "due_date": dates[row.number - 1],
                "principal": row.principal,
                "interest": row.interest,
                "paid_principal": 0,
                "paid_interest": 0,
                # A row can be empty when small parts were paid off early by rounding; nothing is owed on it.
                "status": "due" if row.total else "paid",
                "paid_at": None if row.total else moment,
            }
            for row in loan_rows
        ],
    )
    bulk_insert(
        PartInstallment.__table__,
        [
            {
                "part_id": part.id,
                "loan_id": loan.id,
                "number": row.number,
                "principal": row.principal,
                "interest": row.interest,
                "paid_principal": 0,
                "paid_interest": 0,
            }
            for part, rows in zip(parts, part_rows, strict=True)
            for row in rows
        ],
    )
    bulk_insert(
        LenderCashFlow.__table__,
        [
            {
                "lender_id": p.lender_id,
                "part_id": p.id,
                "currency": p.currency,
                "on_date": start,
                "amount": -p.amount,
                "interest": 0,
                "entry_id": None,
            }
            for p in parts
        ],
    )
    request.status = "funded"
    request.loan_id = loan.id
    request.resolved_at = moment
    link = f"/loans/{loan.id}"
    notify(
        loan.borrower_id,
        "loan_disbursed",
        Msg.plural_of(
            N_plural(
                "Your loan of %(amount)s is funded by %(num)d part(s) and was paid into your wallet "
                "less a fee of %(fee)s.",
                "Your loan of %(amount)s is funded by %(num)d part(s) and was paid into your wallet "
                "less a fee of %(fee)s.",
            ),
            len(parts),
            amount=Money(loan.amount, loan.currency),
            fee=Money(fee, loan.currency),
        ),
        link,
    )
    notify_many(
        [
            (
                p.lender_id,
                "loan_part_funded",
                Msg(
                    N_("Your part of %(amount)s in loan %(loan)s at %(rate)s was lent out."),
                    amount=Money(p.amount, p.currency),
                    loan=loan.id,
                    rate=Rate(p.rate_bps),
                ),
                link,
            )
            for p in parts
        ]
    )
    db.session.flush()
    db.session.expire(loan)
    return loan


# ---------------------------------------------------------------- reading


def get_loan(loan_id: int) -> Loan:
    loan = db.session.get(Loan, loan_id)
    if loan is None:
        raise NotFound(Msg(N_("No loan %(id)s."), id=loan_id))
    return loan


def can_view(loan: Loan, member) -> bool:
    if member.is_operator or loan.borrower_id == member.id:
        return True
    return any(p.lender_id == member.id for p in loan.parts)


def loan_for(loan_id: int, viewer_id: int) -> Loan:
    """The loan, if the viewer is its borrower, one of its lenders or an operator."""
    from ..accounts.services import get_member

    loan = get_loan(loan_id)
    if not can_view(loan, get_member(viewer_id)):
        raise Forbidden(Msg(N_("Only the borrower, its lenders and operators can see a loan.")))
    return loan


def loans_of_borrower(member_id: int) -> list[Loan]:
    return list(
        db.session.execute(select(Loan).where(Loan.borrower_id == member_id).order_by(Loan.id.desc())).scalars()
    )


def next_installment(loan: Loan) -> Installment | None:
    return next((row for row in loan.installments if row.status in ("due", "late")), None)


def present_loan(loan: Loan) -> dict:
    rows = loan.installments
    return {
        "id": loan.id,
        "request_id": loan.request_id,
        "borrower_id": loan.borrower_id,
        "amount": loan.amount,
        "currency": loan.currency,
        "term_months": loan.term_months,
        "rate_bps": loan.rate_bps,
        "apr_bps": loan.apr_bps,
        "fee": loan.fee,
        "status": loan.status,
        "disbursed_at": loan.disbursed_at,
        "closed_at": loan.closed_at,
        "outstanding_principal": loan.outstanding_principal,
        "parts": [
            {
                "id": p.id,
                "lender_id": p.lender_id,
                "amount": p.amount,
                "rate_bps": p.rate_bps,
                "outstanding_principal": p.outstanding_principal,
                "status": p.status,
            }
            for p in loan.parts
        ],
        "schedule": [
            {
                "number": r.number,
                "due_date": r.due_date,
                "principal": r.principal,
                "interest": r.interest,
                "total": r.total,
                "paid": r.paid,
                "status": r.status,
            }
            for r in rows
        ],
        "amount_owed": sum(r.owed for r in rows),
        "amount_due_now": sum(r.owed for r in rows if r.due_date <= today()),
    }
