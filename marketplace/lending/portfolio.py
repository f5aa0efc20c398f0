"""What lenders own and how the loan book is doing (read-only).

A lender's annualized return is the XIRR of its real cash flows: each part's
funding (out, on the disbursement day), every payment received (in, on the
day it arrived), and, for parts still running, their outstanding principal
valued today (in) — so a young portfolio is not shown as a loss. Defaulted
principal counts as lost.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from flask import current_app
from sqlalchemy import func, select

from ..clock import today
from ..extensions import db
from ..money import round_half_up
from . import amortization
from .models import Installment, LenderCashFlow, Loan, LoanPart

ARREARS_BUCKETS = (("1-30", 1, 30), ("31-60", 31, 60), ("61-120", 61, 120))


def _parts(lender_id: int) -> list[LoanPart]:
    return list(
        db.session.execute(
            select(LoanPart)
            .where(LoanPart.lender_id == lender_id, LoanPart.loan_id.is_not(None))
            .order_by(LoanPart.id.desc())
        ).scalars()
    )


def _summary(currency: str, parts: list[LoanPart], flows: list[tuple[date, int]], on: date) -> dict:
    outstanding = sum(p.outstanding_principal for p in parts)
    valued = [*flows, (on, outstanding)] if outstanding else list(flows)
    rate = amortization.xirr(valued) if parts else None
    return {
        "currency": currency,
        "invested": sum(p.amount for p in parts),
        "outstanding_principal": outstanding,
        "interest_received": sum(p.interest_received for p in parts),
        "principal_received": sum(p.principal_received for p in parts),
        "defaulted_principal": sum(p.written_off for p in parts),
        "annualized_return_bps": None if rate is None else round_half_up(rate * 10000),
        "parts": parts,
    }


def portfolio(lender_id: int, currency: str | None = None) -> dict:
    """Figures per currency; the top level is ``currency`` (default: the lender's only/first currency)."""
    on = today()
    parts_by_currency: dict[str, list[LoanPart]] = defaultdict(list)
    for part in _parts(lender_id):
        parts_by_currency[part.currency].append(part)
    flows_by_currency: dict[str, list[tuple[date, int]]] = defaultdict(list)
    for cur, on_date, amount in db.session.execute(
        select(LenderCashFlow.currency, LenderCashFlow.on_date, func.sum(LenderCashFlow.amount))
        .where(LenderCashFlow.lender_id == lender_id)
        .group_by(LenderCashFlow.currency, LenderCashFlow.on_date)
        .order_by(LenderCashFlow.on_date)
    ).all():
        flows_by_currency[cur].append((on_date, int(amount)))
    currencies = {
        cur: _summary(cur, parts, flows_by_currency[cur], on) for cur, parts in sorted(parts_by_currency.items())
    }
    if currency is None:  # the lender's first currency in the configured order (or the first configured)
        configured = current_app.config["CURRENCIES"]
        currency = next((c for c in configured if c in currencies), next(iter(currencies), configured[0]))
    top = currencies.get(currency) or _summary(currency, [], [], on)
    return {**top, "currencies": currencies}


def monthly_cash_flows(lender_id: int, currency: str, months: int = 12) -> list[dict]:
    """The last ``months`` calendar months: lent out, principal back, interest back."""
    on = today()
    keys = []
    year, month = on.year, on.month
    for _ in range(months):
        keys.append((year, month))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    keys.reverse()
    series = {key: {"month": f"{key[0]:04d}-{key[1]:02d}", "out": 0, "principal": 0, "interest": 0} for key in keys}
    first = date(keys[0][0], keys[0][1], 1)
    rows = db.session.execute(
        select(LenderCashFlow.on_date, LenderCashFlow.amount, LenderCashFlow.interest).where(
            LenderCashFlow.lender_id == lender_id,
            LenderCashFlow.currency == currency,
            LenderCashFlow.on_date >= first,
        )
    ).all()
    for on_date, amount, interest in rows:
        bucket = series.get((on_date.year, on_date.month))
        if bucket is None:
            continue
        if amount < 0:
            bucket["out"] += -amount
        else:
            bucket["interest"] += interest
            bucket["principal"] += amount - interest
    return list(series.values())


def loan_book(currency: str | None = None) -> dict:
    """Operators: one currency's loans by status, and its active loans by how late the oldest unpaid row is."""
    on = today()
    present = sorted(db.session.execute(select(Loan.currency).distinct()).scalars())
    currency = currency or (present[0] if len(present) == 1 else current_app.config["CURRENCIES"][0])
    by_status = {
        status: {"count": int(count), "amount": int(amount or 0), "outstanding": int(outstanding or 0)}
        for status, count, amount, outstanding in db.session.execute(
            select(Loan.status, func.count(Loan.id), func.sum(Loan.amount), func.sum(Loan.outstanding_principal))
            .where(Loan.currency == currency)
            .group_by(Loan.status)
        ).all()
    }
    oldest = db.session.execute(
        select(Installment.loan_id, func.min(Installment.due_date), Loan.outstanding_principal)
        .join(Loan, Loan.id == Installment.loan_id)
        .where(Loan.status == "active", Loan.currency == currency, Installment.status == "late")
        .group_by(Installment.loan_id, Loan.outstanding_principal)
        .order_by(Installment.loan_id)
    ).all()
    buckets = {name: {"count": 0, "outstanding": 0, "loan_ids": []} for name, _, _ in ARREARS_BUCKETS}
    for loan_id, due, outstanding in oldest:
        days = (on - due).days
        # Past 120 days a loan defaults at the next run-due; until then it stays in the last bucket.
        name = next((n for n, low, high in ARREARS_BUCKETS if low <= days <= high), ARREARS_BUCKETS[-1][0])
        buckets[name]["count"] += 1
        buckets[name]["outstanding"] += int(outstanding)
        buckets[name]["loan_ids"].append(loan_id)
    defaulted_ids = list(
        db.session.execute(
            select(Loan.id).where(Loan.status == "defaulted", Loan.currency == currency).order_by(Loan.id)
        ).scalars()
    )
    written_off = db.session.execute(
        select(func.coalesce(func.sum(LoanPart.written_off), 0)).where(LoanPart.currency == currency)
    ).scalar_one()
    late = db.session.execute(
        select(func.count(Installment.id))
        .join(Loan, Loan.id == Installment.loan_id)
        .where(Installment.status == "late", Loan.currency == currency)
    ).scalar_one()
    return {
        "currency": currency,
        "currencies": present,
        "by_status": by_status,
        "arrears": buckets,
        "defaulted": {"count": len(defaulted_ids), "written_off": int(written_off), "loan_ids": defaulted_ids},
        "late_installments": int(late),
    }
