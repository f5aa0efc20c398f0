"""Money back from borrowers: manual repayments, scheduled collection, payoff, default.

Every payment is one journal entry: the borrower's wallet pays, each lender's
wallet receives its parts' interest and principal, each part's claim and the
loan's receivable go down by the principal. How a payment splits is the pure
``amortization.allocate_payment`` (oldest installment first, interest before
principal, each among the parts by largest remainder). ``collect_due`` does
the same for thousands of loans at once: wallets locked once, one
``post_entries`` batch, set-based row updates.

Lock order: loan rows (ascending id), then balance rows (the ledger's order).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import and_, func, select, update

from ..bulk import bulk_insert, bulk_update
from ..clock import now, today
from ..db import transaction
from ..errors import Forbidden, InvalidState, NotFound, ValidationFailed
from ..extensions import db
from ..ledger import services as ledger
from ..ledger.batch import NewEntry, post_entries
from ..ledger.models import Account
from ..money import format_amount
from ..notifications.services import notify_many
from ..texts import N_, Money, Msg, by_status
from . import amortization
from .models import Installment, LenderCashFlow, Loan, LoanPart, PartInstallment, Repayment

_NOTHING_OWED = {
    "repaid": N_("The loan is repaid; nothing is owed."),
    "defaulted": N_("The loan is defaulted; nothing is owed."),
}
_NOTHING_TO_PAY_OFF = {
    "repaid": N_("The loan is repaid; there is nothing to pay off."),
    "defaulted": N_("The loan is defaulted; there is nothing to pay off."),
}

COLLECT_CHUNK = 500
_parts = LoanPart.__table__
_rows = PartInstallment.__table__
_installments = Installment.__table__
_loans = Loan.__table__


@dataclass
class Payment:
    """A payment on one loan, planned: who gets what, and which schedule rows it pays."""

    loan_id: int
    borrower_id: int
    currency: str
    kind: str
    amount: int
    by_part: dict[int, list[int]] = field(default_factory=dict)  # part id -> [interest, principal]
    row_paid: dict[int, list[int]] = field(default_factory=dict)  # part-row id -> [interest, principal] added
    closes: bool = False  # payoff: every remaining row is settled


# ---------------------------------------------------------------- reading


def _lock_loans(loan_ids: list[int]) -> dict[int, Loan]:
    loans = db.session.execute(
        select(Loan).where(Loan.id.in_(sorted(loan_ids))).order_by(Loan.id).with_for_update(of=Loan),
        execution_options={"populate_existing": True},
    ).scalars()
    return {loan.id: loan for loan in loans}


def _unpaid_part_rows(loan_id: int, up_to: int | None = None) -> list[tuple]:
    """(row id, part id, number, principal, interest, paid principal, paid interest) still owed, oldest first."""
    query = select(
        _rows.c.id,
        _rows.c.part_id,
        _rows.c.number,
        _rows.c.principal,
        _rows.c.interest,
        _rows.c.paid_principal,
        _rows.c.paid_interest,
    ).where(
        _rows.c.loan_id == loan_id,
        (_rows.c.paid_principal < _rows.c.principal) | (_rows.c.paid_interest < _rows.c.interest),
    )
    if up_to is not None:
        query = query.where(_rows.c.number <= up_to)
    return db.session.execute(query.order_by(_rows.c.number, _rows.c.part_id)).all()


def _open_installments(loan_id: int) -> list[Installment]:
    return list(
        db.session.execute(
            select(Installment)
            .where(Installment.loan_id == loan_id, Installment.status.in_(("due", "late")))
            .order_by(Installment.number),
            execution_options={"populate_existing": True},
        ).scalars()
    )


def amount_owed(loan_id: int) -> int:
    """Everything still scheduled: the most a manual repayment may be."""
    return sum(row.owed for row in _open_installments(loan_id))


# ---------------------------------------------------------------- planning


def _plan(loan: Loan, amount: int, kind: str) -> Payment:
    """Split ``amount`` over the loan's open rows (oldest first, interest before principal)."""
    up_to, covered = None, 0
    for row in _open_installments(loan.id):
        covered += row.owed
        up_to = row.number
        if covered >= amount:
            break
    return _allocate(Payment(loan.id, loan.borrower_id, loan.currency, kind, amount), _unpaid_part_rows(loan.id, up_to))


def _allocate(payment: Payment, rows) -> Payment:
    """Fill ``payment`` from the loan's unpaid part rows (oldest first): the pure rule decides the split."""
    by_row = {(part_id, number): row_id for row_id, part_id, number, *_ in rows}
    dues = [
        amortization.PartDue(part_id=part_id, number=number, interest_owed=i - pi, principal_owed=p - pp)
        for _, part_id, number, p, i, pp, pi in rows
    ]
    for a in amortization.allocate_payment(payment.amount, dues):
        payment.row_paid[by_row[(a.part_id, a.number)]] = [a.interest, a.principal]
        totals = payment.by_part.setdefault(a.part_id, [0, 0])
        totals[0] += a.interest
        totals[1] += a.principal
    return payment


def payoff_quote(loan: Loan, on: date | None = None) -> dict:
    """Outstanding principal + unpaid interest of rows already due + interest accrued this period, per part."""
    on = on or today()
    if loan.status != "active":
        raise InvalidState(
            by_status(_NOTHING_TO_PAY_OFF, loan.status, f"The loan is {loan.status}; there is nothing to pay off.")
        )
    installments = loan.installments
    current = next((r for r in installments if r.due_date > on), None)
    start = loan.disbursed_at.date()
    if current is not None and current.number > 1:
        start = installments[current.number - 2].due_date
    parts = {p.id: p for p in loan.parts}
    quote: dict[int, list[int]] = {part_id: [0, 0] for part_id in parts}
    row_paid: dict[int, list[int]] = {}
    current_row: dict[int, int] = {}
    for row_id, part_id, number, p, i, pp, pi in _unpaid_part_rows(loan.id):
        interest = 0
        if current is None or number < current.number:
            interest = i - pi  # already due: its interest in full
        quote[part_id][0] += interest
        quote[part_id][1] += p - pp
        row_paid[row_id] = [interest, p - pp]
        if current is not None and number == current.number:
            current_row[part_id] = row_id
    if current is not None:
        # Interest accrues on the part's scheduled balance at the period's start, pro rata by days.
        balances = dict(
            db.session.execute(
                select(_rows.c.part_id, func.sum(_rows.c.principal))
                .where(_rows.c.loan_id == loan.id, _rows.c.number >= current.number)
                .group_by(_rows.c.part_id)
            ).all()
        )
        paid_now = dict(
            db.session.execute(
                select(_rows.c.part_id, _rows.c.paid_interest).where(
                    _rows.c.loan_id == loan.id, _rows.c.number == current.number
                )
            ).all()
        )
        for part_id, part in parts.items():
            accrued = amortization.accrued_interest(
                int(balances.get(part_id, 0)), part.rate_bps, start, current.due_date, on
            )
            extra = max(0, accrued - int(paid_now.get(part_id, 0)))
            if extra and part_id in current_row:
                quote[part_id][0] += extra
                row_paid[current_row[part_id]][0] += extra
    interest = sum(q[0] for q in quote.values())
    principal = sum(q[1] for q in quote.values())
    return {
        "loan_id": loan.id,
        "on": on,
        "amount": interest + principal,
        "principal": principal,
        "interest": interest,
        "currency": loan.currency,
        "parts": [{"part_id": k, "interest": v[0], "principal": v[1]} for k, v in sorted(quote.items())],
        "_row_paid": row_paid,
    }


# ---------------------------------------------------------------- applying


def _account_ids(codes: set[str]) -> dict[str, int]:
    found = dict(db.session.execute(select(Account.code, Account.id).where(Account.code.in_(codes))).all())
    missing = codes - set(found)
    if missing:
        raise RuntimeError(f"accounts missing: {sorted(missing)[:3]}")
    return found


def _apply(payments: list[Payment], moment: datetime | None = None, *, load: bool = True) -> list[Repayment]:
    """Post the payments (one batch) and record them, dated ``moment``, on the schedule rows, parts and loans."""
    moment = moment or now()
    payments = [p for p in payments if p.amount > 0]
    if not payments:
        return []
    part_ids = sorted({part_id for p in payments for part_id in p.by_part})
    part_info = {
        row.id: row
        for row in db.session.execute(
            select(_parts.c.id, _parts.c.loan_id, _parts.c.lender_id, _parts.c.currency).where(
                _parts.c.id.in_(part_ids)
            )
        ).all()
    }
    codes = {ledger.wallet_code(p.borrower_id, p.currency) for p in payments}
    codes |= {f"loan:{p.loan_id}:receivable:{p.currency}" for p in payments}
    codes |= {ledger.wallet_code(info.lender_id, info.currency) for info in part_info.values()}
    codes |= {f"loan:{info.loan_id}:part:{info.id}:{info.currency}" for info in part_info.values()}
    ids = _account_ids(codes)

    entries = []
    for p in payments:
        postings: dict[int, int] = defaultdict(int)
        postings[ids[ledger.wallet_code(p.borrower_id, p.currency)]] += p.amount
        principal = 0
        for part_id, (interest, part_principal) in p.by_part.items():
            info = part_info[part_id]
            postings[ids[ledger.wallet_code(info.lender_id, info.currency)]] -= interest + part_principal
            if part_principal:
                postings[ids[f"loan:{p.loan_id}:part:{part_id}:{p.currency}"]] += part_principal
            principal += part_principal
        if principal:
            postings[ids[f"loan:{p.loan_id}:receivable:{p.currency}"]] -= principal
        memo = f"Loan {p.loan_id}: {p.kind} of {format_amount(p.amount, p.currency)}"
        entries.append(NewEntry(f"loan_{p.kind}", [(a, v) for a, v in postings.items() if v], memo=memo))
    entry_ids = post_entries(entries)
    _record(payments, entry_ids, part_info, moment)
    if not load:
        return []
    return list(
        db.session.execute(select(Repayment).where(Repayment.entry_id.in_(entry_ids)).order_by(Repayment.id)).scalars()
    )


def _record(payments: list[Payment], entry_ids: list[int], part_info: dict, moment: datetime) -> None:
    on = moment.date()
    # Schedule rows of the parts.
    row_ids = sorted({row_id for p in payments for row_id in p.row_paid})
    current = (
        {
            row.id: row
            for row in db.session.execute(
                select(_rows.c.id, _rows.c.paid_interest, _rows.c.paid_principal).where(_rows.c.id.in_(row_ids))
            ).all()
        }
        if row_ids
        else {}
    )
    row_updates = []
    for p in payments:
        for row_id, (interest, principal) in p.row_paid.items():
            row = current[row_id]
            row_updates.append(
                {
                    "id": row_id,
                    "paid_interest": row.paid_interest + interest,
                    "paid_principal": row.paid_principal + principal,
                }
            )
    bulk_update(_rows, row_updates)
    # Parts.
    parts = {
        row.id: row
        for row in db.session.execute(
            select(
                _parts.c.id, _parts.c.outstanding_principal, _parts.c.principal_received, _parts.c.interest_received
            ).where(_parts.c.id.in_(list(part_info)))
        ).all()
    }
    part_updates, flows = [], []
    for p, entry_id in zip(payments, entry_ids, strict=True):
        for part_id, (interest, principal) in p.by_part.items():
            row = parts[part_id]
            outstanding = row.outstanding_principal - principal
            part_updates.append(
                {
                    "id": part_id,
                    "outstanding_principal": outstanding,
                    "principal_received": row.principal_received + principal,
                    "interest_received": row.interest_received + interest,
                    "status": "repaid" if outstanding == 0 else "active",
                }
            )
            flows.append(
                {
                    "lender_id": part_info[part_id].lender_id,
                    "part_id": part_id,
                    "currency": p.currency,
                    "on_date": on,
                    "amount": interest + principal,
                    "interest": interest,
                    "entry_id": entry_id,
                }
            )
    bulk_update(_parts, part_updates)
    bulk_insert(LenderCashFlow.__table__, flows)
    bulk_insert(
        Repayment.__table__,
        [
            {
                "loan_id": p.loan_id,
                "kind": p.kind,
                "amount": p.amount,
                "principal": sum(v[1] for v in p.by_part.values()),
                "interest": sum(v[0] for v in p.by_part.values()),
                "entry_id": entry_id,
                "created_at": moment,
            }
            for p, entry_id in zip(payments, entry_ids, strict=True)
        ],
    )
    _roll_up(payments, moment)


def _roll_up(payments: list[Payment], moment: datetime) -> None:
    """Loan rows = sums of part rows; loans' outstanding principal; paid and repaid states."""
    loan_ids = sorted({p.loan_id for p in payments})
    sums = db.session.execute(
        select(_rows.c.loan_id, _rows.c.number, func.sum(_rows.c.paid_principal), func.sum(_rows.c.paid_interest))
        .where(_rows.c.loan_id.in_(loan_ids))
        .group_by(_rows.c.loan_id, _rows.c.number)
    ).all()
    closes = {p.loan_id for p in payments if p.closes}
    installments = {
        (row.loan_id, row.number): row
        for row in db.session.execute(
            select(
                _installments.c.id,
                _installments.c.loan_id,
                _installments.c.number,
                _installments.c.principal,
                _installments.c.interest,
                _installments.c.paid_principal,
                _installments.c.paid_interest,
                _installments.c.status,
                _installments.c.paid_at,
            ).where(_installments.c.loan_id.in_(loan_ids))
        ).all()
    }
    updates = []
    for loan_id, number, paid_principal, paid_interest in sums:
        row = installments[(loan_id, number)]
        paid_principal, paid_interest = int(paid_principal), int(paid_interest)
        if (paid_principal, paid_interest) == (row.paid_principal, row.paid_interest) and not (
            loan_id in closes and row.status in ("due", "late")
        ):
            continue
        full = paid_principal == row.principal and paid_interest >= row.interest
        settled = full or (loan_id in closes and row.status in ("due", "late"))
        updates.append(
            {
                "id": row.id,
                "paid_principal": paid_principal,
                "paid_interest": paid_interest,
                "status": "paid" if settled else row.status,
                "paid_at": moment if settled else row.paid_at,
            }
        )
    bulk_update(_installments, updates)
    outstanding = dict(
        db.session.execute(
            select(_parts.c.loan_id, func.sum(_parts.c.outstanding_principal))
            .where(_parts.c.loan_id.in_(loan_ids))
            .group_by(_parts.c.loan_id)
        ).all()
    )
    bulk_update(
        _loans,
        [
            {
                "id": loan_id,
                "outstanding_principal": int(outstanding[loan_id]),
                "status": "repaid" if int(outstanding[loan_id]) == 0 else "active",
                "closed_at": moment if int(outstanding[loan_id]) == 0 else None,
            }
            for loan_id in loan_ids
        ],
    )
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, (Loan, LoanPart, Installment, Account)):
            db.session.expire(obj)


# ---------------------------------------------------------------- commands


def _borrowers_loan(loan_id: int, member_id: int) -> Loan:
    loans = _lock_loans([loan_id])
    if loan_id not in loans:
        raise NotFound(Msg(N_("No loan %(id)s."), id=loan_id))
    loan = loans[loan_id]
    if loan.borrower_id != member_id:
        raise Forbidden(Msg(N_("Only the borrower repays a loan.")))
    if loan.status != "active":
        raise InvalidState(by_status(_NOTHING_OWED, loan.status, f"The loan is {loan.status}; nothing is owed."))
    return loan


def repay(loan_id: int, member_id: int, amount: int) -> Repayment:
    """A manual repayment from the borrower's wallet: oldest installment first, interest first."""
    with transaction():
        loan = _borrowers_loan(loan_id, member_id)
        owed = amount_owed(loan.id)
        if amount > owed:
            raise ValidationFailed(
                Msg(
                    N_(
                        "That is more than the %(owed)s still owed on this loan; "
                        "to repay early, ask for a payoff quote."
                    ),
                    owed=Money(owed, loan.currency),
                ),
                errors={"amount": [Msg(N_("at most %(owed)s is owed"), owed=Money(owed, loan.currency))]},
            )
        (repayment,) = _apply([_plan(loan, amount, "manual")])
    return repayment


def payoff(loan_id: int, member_id: int) -> Repayment:
    """Repay everything: outstanding principal plus interest accrued to today."""
    with transaction():
        loan = _borrowers_loan(loan_id, member_id)
        quote = payoff_quote(loan)
        payment = Payment(loan.id, loan.borrower_id, loan.currency, "payoff", quote["amount"], closes=True)
        payment.by_part = {q["part_id"]: [q["interest"], q["principal"]] for q in quote["parts"]}
        payment.row_paid = quote["_row_paid"]
        (repayment,) = _apply([payment])
    return repayment


def collect_due(moment: datetime) -> dict:
    """Scheduler: collect every installment due by ``moment`` from borrowers' wallets (partly when short).

    Loans are taken in chunks, each one transaction: the loan rows are locked,
    then every account the chunk's payments touch (borrowers' and lenders'
    wallets, claims, receivables) in ascending id order, as the ledger always
    does; what each borrower can pay is read from its locked wallet; the
    split is planned for the whole chunk from a few set-based reads, and the
    payments are posted as one batch.
    """
    on = moment.date()
    loan_ids = list(_loans_with_dues(on).keys())
    report = {"loans": 0, "collected": 0, "short": 0}
    for start in range(0, len(loan_ids), COLLECT_CHUNK):
        with transaction():
            payments, short = _collect_chunk(loan_ids[start : start + COLLECT_CHUNK], on)
            _apply(payments, moment, load=False)
            report["loans"] += len(payments)
            report["collected"] += sum(p.amount for p in payments)
            report["short"] += short
    report["late"] = _mark_late(on)
    report["defaulted"] = _default_overdue(on, moment)
    return report


def _collect_chunk(loan_ids: list[int], on: date) -> tuple[list[Payment], int]:
    loans = db.session.execute(
        select(_loans.c.id, _loans.c.borrower_id, _loans.c.currency)
        .where(_loans.c.id.in_(loan_ids), _loans.c.status == "active")
        .order_by(_loans.c.id)
        .with_for_update()
    ).all()
    dues = _loans_with_dues(on, [loan.id for loan in loans])  # again, under the locks
    loans = [loan for loan in loans if dues.get(loan.id, 0) > 0]
    if not loans:
        return [], 0
    ids = [loan.id for loan in loans]
    parts = db.session.execute(
        select(_parts.c.id, _parts.c.loan_id, _parts.c.lender_id, _parts.c.currency).where(_parts.c.loan_id.in_(ids))
    ).all()
    wallet_codes = {ledger.wallet_code(loan.borrower_id, loan.currency) for loan in loans}
    codes = wallet_codes | {f"loan:{loan.id}:receivable:{loan.currency}" for loan in loans}
    codes |= {ledger.wallet_code(p.lender_id, p.currency) for p in parts}
    codes |= {f"loan:{p.loan_id}:part:{p.id}:{p.currency}" for p in parts}
    account_ids = _account_ids(codes)
    balances = ledger.lock_balances(account_ids.values())  # every account of the chunk, ascending ids
    available = {code: balances[account_ids[code]].available for code in wallet_codes}

    amounts: dict[int, int] = {}
    short = 0
    for loan in loans:
        code = ledger.wallet_code(loan.borrower_id, loan.currency)
        amount = min(dues[loan.id], max(0, available[code]))
        short += amount < dues[loan.id]
        if amount > 0:
            available[code] -= amount
            amounts[loan.id] = amount
    if not amounts:
        return [], short
    rows_by_loan = _unpaid_rows_due(list(amounts), on)
    payments = [
        _allocate(
            Payment(loan.id, loan.borrower_id, loan.currency, "collection", amounts[loan.id]), rows_by_loan[loan.id]
        )
        for loan in loans
        if loan.id in amounts
    ]
    return payments, short


def _unpaid_rows_due(loan_ids: list[int], on: date) -> dict[int, list[tuple]]:
    """Each loan's unpaid part rows of installments due by ``on``, oldest first (what a collection may pay)."""
    due_numbers = (
        select(_installments.c.loan_id, _installments.c.number)
        .where(
            _installments.c.loan_id.in_(loan_ids),
            _installments.c.status.in_(("due", "late")),
            _installments.c.due_date <= on,
        )
        .subquery()
    )
    rows = db.session.execute(
        select(
            _rows.c.id,
            _rows.c.part_id,
            _rows.c.number,
            _rows.c.principal,
            _rows.c.interest,
            _rows.c.paid_principal,
            _rows.c.paid_interest,
            _rows.c.loan_id,
        )
        .join(due_numbers, (due_numbers.c.loan_id == _rows.c.loan_id) & (due_numbers.c.number == _rows.c.number))
        .where((_rows.c.paid_principal < _rows.c.principal) | (_rows.c.paid_interest < _rows.c.interest))
        .order_by(_rows.c.loan_id, _rows.c.number, _rows.c.part_id)
    ).all()
    grouped: dict[int, list[tuple]] = defaultdict(list)
    for row in rows:
        grouped[row[7]].append(tuple(row[:7]))
    return grouped


def _loans_with_dues(on: date, loan_ids: list[int] | None = None) -> dict[int, int]:
    """Active loans with installments due by ``on``: loan id -> amount due, by loan id."""
    owed = Installment.principal + Installment.interest - Installment.paid_principal - Installment.paid_interest
    query = (
        select(Installment.loan_id, func.sum(owed))
        .join(Loan, Loan.id == Installment.loan_id)
        .where(Loan.status == "active", Installment.status.in_(("due", "late")), Installment.due_date <= on)
        .group_by(Installment.loan_id)
        .order_by(Installment.loan_id)
    )
    if loan_ids is not None:
        query = query.where(Installment.loan_id.in_(loan_ids))
    return {loan_id: int(due) for loan_id, due in db.session.execute(query).all()}


def _mark_late(on: date) -> int:
    with transaction():
        late = db.session.execute(
            select(Installment.id, Loan.borrower_id, Loan.id, Loan.currency, Installment.number)
            .join(Loan, Loan.id == Installment.loan_id)
            .where(Loan.status == "active", Installment.status == "due", Installment.due_date <= on)
            .where(
                Installment.principal + Installment.interest > Installment.paid_principal + Installment.paid_interest
            )
        ).all()
        if late:
            bulk_update(_installments, [{"id": row[0], "status": "late"} for row in late])
            notify_many(
                [
                    (
                        borrower,
                        "installment_late",
                        Msg(
                            N_(
                                "Installment %(number)s of loan %(loan)s is late: "
                                "add money to your wallet so it can be collected."
                            ),
                            number=number,
                            loan=loan_id,
                        ),
                        f"/loans/{loan_id}",
                    )
                    for _, borrower, loan_id, _, number in late
                ]
            )
    return len(late)


def _default_overdue(on: date, moment: datetime) -> int:
    limit = on - timedelta(days=current_app.config["DEFAULT_AFTER_DAYS"])
    loan_ids = list(
        db.session.execute(
            select(Installment.loan_id)
            .join(Loan, Loan.id == Installment.loan_id)
            .where(Loan.status == "active", Installment.status == "late", Installment.due_date <= limit)
            .distinct()
            .order_by(Installment.loan_id)
        ).scalars()
    )
    for loan_id in loan_ids:
        default_loan(loan_id, moment)
    return len(loan_ids)


def default_loan(loan_id: int, moment: datetime) -> Loan:
    """Write off each part's outstanding principal; the loan and its open rows are defaulted."""
    with transaction():
        loan = _lock_loans([loan_id]).get(loan_id)
        if loan is None or loan.status != "active":
            return loan
        parts = [p for p in loan.parts if p.outstanding_principal > 0]
        postings = [(claim_id, p.outstanding_principal) for claim_id, p in _claims(loan, parts)]
        total = sum(p.outstanding_principal for p in parts)
        if total:
            receivable = ledger.ensure_account(loan.receivable_code, loan.currency, "loan", loan.borrower_id)
            ledger.post_entry(
                "loan_write_off",
                [*postings, (receivable, -total)],
                memo=f"Loan {loan.id} defaulted: {format_amount(total, loan.currency)} principal written off",
            )
        rows = []
        for part in loan.parts:
            rows.append(
                {
                    "id": part.id,
                    "written_off": part.outstanding_principal,
                    "outstanding_principal": 0,
                    "status": "defaulted" if part.outstanding_principal else part.status,
                }
            )
        bulk_update(_parts, rows)
        db.session.execute(
            update(_installments)
            .where(and_(_installments.c.loan_id == loan.id, _installments.c.status.in_(("due", "late"))))
            .values(status="defaulted")
        )
        db.session.execute(
            update(_loans)
            .where(_loans.c.id == loan.id)
            .values(status="defaulted", outstanding_principal=0, closed_at=moment)
        )
        link = f"/loans/{loan.id}"
        notify_many(
            [
                (
                    loan.borrower_id,
                    "loan_defaulted",
                    Msg(N_("Loan %(loan)s has defaulted after missed installments."), loan=loan.id),
                    link,
                )
            ]
            + [
                (
                    p.lender_id,
                    "loan_part_defaulted",
                    Msg(
                        N_("Loan %(loan)s defaulted: %(amount)s of your part was written off."),
                        loan=loan.id,
                        amount=Money(p.outstanding_principal, p.currency),
                    ),
                    link,
                )
                for p in parts
            ]
        )
        for obj in list(db.session.identity_map.values()):
            if isinstance(obj, (Loan, LoanPart, Installment)):
                db.session.expire(obj)
    return db.session.get(Loan, loan_id)


def _claims(loan: Loan, parts: list[LoanPart]):
    ids = _account_ids({p.claim_code() for p in parts}) if parts else {}
    return [(ids[p.claim_code()], p) for p in parts]


def _register_jobs() -> None:
    from ..operators.jobs import due_job

    due_job("collect_installments")(collect_due)


_register_jobs()
