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
from sqlalchemy import case, func, select

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
    if currency is None:
        currency = next(iter(currencies)) if len(currencies) == 1 else current_app.config["CURRENCIES"][0]
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


def loan_book() -> dict:
    """Operators: loans by status, and active loans by how late their oldest unpaid installment is."""
    on = today()
    by_status = {
        status: {"count": int(count), "amount": int(amount or 0), "outstanding": int(outstanding or 0)}
        for status, count, amount, outstanding in db.session.execute(
            select(
                Loan.status, func.count(Loan.id), func.sum(Loan.amount), func.sum(Loan.outstanding_principal)
            ).group_by(Loan.status)
        ).all()
    }
    oldest = db.session.execute(
        select(Installment.loan_id, func.min(Installment.due_date))
        .join(Loan, Loan.id == Installment.loan_id)
        .where(Loan.status == "active", Installment.status == "late")
        .group_by(Installment.loan_id)
    ).all()
    buckets = {name: {"count": 0, "outstanding": 0, "loan_ids": []} for name, _, _ in ARREARS_BUCKETS}
    outstanding = (
        dict(
            db.session.execute(
                select(Loan.id, Loan.outstanding_principal).where(Loan.id.in_([loan_id for loan_id, _ in oldest]))
            ).all()
        )
        if oldest
        else {}
    )
    for loan_id, due in oldest:
        days = (on - due).days
        for name, low, high in ARREARS_BUCKETS:
            if low <= days <= high or (name == "61-120" and days > high):
                buckets[name]["count"] += 1
                buckets[name]["outstanding"] += int(outstanding.get(loan_id, 0))
                buckets[name]["loan_ids"].append(loan_id)
                break
    defaulted = by_status.get("defaulted", {"count": 0, "amount": 0})
    written_off = db.session.execute(select(func.coalesce(func.sum(LoanPart.written_off), 0))).scalar_one()
    return {
        "by_status": by_status,
        "arrears": buckets,
        "defaulted": {"count": defaulted["count"], "written_off": int(written_off)},
        "late_installments": int(
            db.session.execute(select(func.count(case((Installment.status == "late", 1))))).scalar_one()
        ),
    }
