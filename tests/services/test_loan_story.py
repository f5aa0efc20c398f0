"""The whole life of three loans with the test clock (SQLite and PostgreSQL).

Loan 1 is collected monthly for a year; one installment is late (the wallet
is empty on its due day) and is caught up when money arrives. Loan 2's
borrower stops paying and the loan defaults after DEFAULT_AFTER_DAYS. Loan 3
is paid off early. At the end the ledger invariants hold, and each lender's
wallet received exactly the sum of its parts' schedule rows that were paid.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from marketplace.clock import now
from marketplace.extensions import db
from marketplace.ledger.models import Account, Hold
from marketplace.lending import amortization, market, repayments
from marketplace.lending.models import Installment, LenderCashFlow, Loan, LoanPart, PartInstallment
from marketplace.money import fee
from marketplace.operators.jobs import run_due
from marketplace.wallet import services as wallet
from tests.helpers import assert_ledger_invariants, make_member, set_clock, wallet_of

T0 = datetime(2027, 1, 31, 8, 0, tzinfo=UTC)  # the 31st: due dates fall on months' last days


def _advance(days: int) -> dict:
    """Move the clock forward one day at a time, running the scheduler daily, as cron would."""
    report = {}
    for _ in range(days):
        set_clock(now() + timedelta(days=1))
        report = run_due()
    return report


def _withdraw_all(member_id: int) -> None:
    available = wallet_of(member_id)["available"]
    if available:
        wallet.withdraw(member_id, available, "EUR")


def test_three_loans_from_funding_to_repaid_defaulted_and_paid_off(app):
    set_clock(T0)
    lenders = [make_member(funds={"EUR": 2_000_000}) for _ in range(3)]
    start = {lender.id: wallet_of(lender.id)["balance"] for lender in lenders}
    for lender, rate in zip(lenders, (650, 800, 950), strict=True):
        market.create_offer(lender.id, amount=900_000, currency="EUR", min_rate_bps=rate, max_part=50_000)
    steady, stopper, early = (make_member(funds={"EUR": 10_000}) for _ in range(3))

    loans = []
    for borrower, amount in ((steady, 120_000), (stopper, 90_000), (early, 60_000)):
        request = market.create_request(
            borrower.id, amount=amount, currency="EUR", term_months=12, max_rate_bps=1500, purpose="story"
        )
        assert request.status == "funded"
        loans.append(db.session.get(Loan, request.loan_id))
    steady_loan, stopper_loan, early_loan = loans
    for loan in loans:
        parts = loan.parts
        assert sum(p.amount for p in parts) == loan.amount
        assert all(p.amount <= 50_000 for p in parts)
        assert loan.installments[0].due_date.isoformat() == "2027-02-28"  # Jan 31 + 1 month
        assert wallet_of(loan.borrower_id)["balance"] == 10_000 + loan.amount - fee(loan.amount, 100)
        rows = [amortization.part_schedule(p.amount, p.rate_bps, 12) for p in parts]
        assert [r.total for r in loan.installments] == [r.total for r in amortization.sum_schedules(rows)]
    assert_ledger_invariants()

    # The stopper spends its loan at once: nothing can be collected from it.
    _withdraw_all(stopper.id)
    # The early borrower repays everything on day 45.
    _advance(45)
    quote = repayments.payoff_quote(db.session.get(Loan, early_loan.id))
    assert quote["principal"] == 60_000 - sum(
        r.principal for r in db.session.get(Loan, early_loan.id).installments if r.status == "paid"
    )
    assert quote["interest"] > 0
    wallet.deposit(early.id, quote["amount"], "EUR")
    repayment = repayments.payoff(early_loan.id, early.id)
    assert repayment.amount == quote["amount"] and repayment.kind == "payoff"
    early_state = db.session.get(Loan, early_loan.id)
    assert early_state.status == "repaid" and early_state.outstanding_principal == 0
    assert all(r.status == "paid" for r in early_state.installments)

    # The steady borrower: every month's wallet covers the installment, except month 4 (empty wallet).
    steady_state = db.session.get(Loan, steady_loan.id)
    _withdraw_all(steady.id)
    wallet.deposit(steady.id, sum(r.owed for r in steady_state.installments[:3]), "EUR")
    # Month 4 falls due with nothing in the wallet: late, then caught up a few days later.
    while now().date() <= steady_state.installments[3].due_date:
        _advance(1)
    row4 = db.session.execute(
        select(Installment).where(Installment.loan_id == steady_loan.id, Installment.number == 4)
    ).scalar_one()
    assert row4.status == "late" and row4.paid == 0
    _advance(5)
    wallet.deposit(steady.id, sum(r.owed for r in steady_state.installments[3:]), "EUR")
    _advance(1)
    db.session.expire_all()
    row4 = db.session.get(Installment, row4.id)
    assert row4.status == "paid" and row4.paid == row4.total

    # Run the calendar on past the last due date and past the stopper's default.
    _advance(400)
    db.session.expire_all()
    steady_state = db.session.get(Loan, steady_loan.id)
    assert steady_state.status == "repaid" and steady_state.outstanding_principal == 0
    assert all(r.status == "paid" and r.paid == r.total for r in steady_state.installments)
    stopper_state = db.session.get(Loan, stopper_loan.id)
    assert stopper_state.status == "defaulted"
    assert all(r.status == "defaulted" for r in stopper_state.installments)
    written_off = sum(p.written_off for p in stopper_state.parts)
    assert written_off == 90_000  # nothing was ever collected from the stopper
    assert all(p.status == "defaulted" and p.outstanding_principal == 0 for p in stopper_state.parts)

    # Every lender got exactly what its paid schedule rows say; claims and receivables are empty.
    for lender in lenders:
        paid = db.session.execute(
            select(func.coalesce(func.sum(PartInstallment.paid_principal + PartInstallment.paid_interest), 0))
            .join(LoanPart, LoanPart.id == PartInstallment.part_id)
            .where(LoanPart.lender_id == lender.id)
        ).scalar_one()
        lent = db.session.execute(
            select(func.coalesce(func.sum(LoanPart.amount), 0)).where(
                LoanPart.lender_id == lender.id, LoanPart.loan_id.is_not(None)
            )
        ).scalar_one()
        flows = db.session.execute(
            select(func.coalesce(func.sum(LenderCashFlow.amount), 0)).where(LenderCashFlow.lender_id == lender.id)
        ).scalar_one()
        assert wallet_of(lender.id)["balance"] == start[lender.id] - lent + paid
        assert flows == paid - lent
    leftovers = db.session.execute(
        select(Account.code, Account.balance).where(Account.kind.in_(("loan", "loan_part")), Account.balance != 0)
    ).all()
    assert leftovers == []
    assert db.session.execute(select(func.count(Hold.id)).where(Hold.status == "held")).scalar_one() == 3  # offers
    assert_ledger_invariants()
