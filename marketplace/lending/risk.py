"""Gather what the risk grade looks at for one member, and ask the pure grading rule."""

from __future__ import annotations

from sqlalchemy import func, select

from ..accounts.services import get_member
from ..clock import now
from ..extensions import db
from . import amortization, grading
from .models import Installment, Loan


def _history(member_id: int) -> dict:
    loans = dict(
        db.session.execute(
            select(Loan.status, func.count(Loan.id)).where(Loan.borrower_id == member_id).group_by(Loan.status)
        ).all()
    )
    rows = db.session.execute(
        select(Installment.status, Installment.due_date, Installment.paid_at)
        .join(Loan, Loan.id == Installment.loan_id)
        .where(Loan.borrower_id == member_id, Installment.status.in_(("paid", "late", "defaulted")))
    ).all()
    on_time = sum(1 for status, due, paid_at in rows if status == "paid" and paid_at and paid_at.date() <= due)
    late = sum(
        1 for status, due, paid_at in rows if status in ("late", "defaulted") or (paid_at and paid_at.date() > due)
    )
    return {
        "loans_repaid": int(loans.get("repaid", 0)),
        "loans_defaulted": int(loans.get("defaulted", 0)),
        "installments_on_time": on_time,
        "installments_late": late,
    }


def platform_monthly_debt(member_id: int) -> int:
    """What the member's active loans here cost a month: each loan's largest scheduled installment."""
    rows = db.session.execute(
        select(func.max(Installment.principal + Installment.interest))
        .join(Loan, Loan.id == Installment.loan_id)
        .where(Loan.borrower_id == member_id, Loan.status == "active")
        .group_by(Loan.id)
    ).scalars()
    return sum(int(value or 0) for value in rows)


def grade_member(
    member_id: int,
    *,
    amount: int,
    term_months: int,
    rate_bps: int,
    monthly_income: int | None = None,
    monthly_debt: int = 0,
) -> grading.Grade:
    member = get_member(member_id)
    days = max(0, (now() - member.created_at).days)
    return grading.grade(
        grading.GradeInput(
            kyc_verified=member.is_verified,
            membership_days=days,
            monthly_income=monthly_income,
            monthly_debt=(monthly_debt or 0) + platform_monthly_debt(member_id),
            new_payment=amortization.monthly_payment(amount, rate_bps, term_months),
            **_history(member_id),
        )
    )
