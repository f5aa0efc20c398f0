"""Read-side ledger queries for operators: journal, statements, trial balance."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import case, func, select

from ..extensions import db
from .models import Account, Hold, JournalEntry, Posting


def _entries_query(
    account: str | None = None, kind: str | None = None, since: datetime | None = None, until: datetime | None = None
):
    query = select(JournalEntry)
    if account:
        query = query.where(
            JournalEntry.id.in_(
                select(Posting.entry_id).join(Account, Posting.account_id == Account.id).where(Account.code == account)
            )
        )
    if kind:
        query = query.where(JournalEntry.kind == kind)
    if since:
        query = query.where(JournalEntry.created_at >= since)
    if until:
        query = query.where(JournalEntry.created_at < until)
    return query


def journal_entries(*, account=None, kind=None, since=None, until=None, offset: int = 0, limit: int | None = 50):
    query = _entries_query(account, kind, since, until).order_by(JournalEntry.id.desc()).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.execute(query).scalars())


def count_journal_entries(*, account=None, kind=None, since=None, until=None) -> int:
    sub = _entries_query(account, kind, since, until).subquery()
    return db.session.execute(select(func.count()).select_from(sub)).scalar_one()


def entry_kinds() -> list[str]:
    return list(db.session.execute(select(JournalEntry.kind).distinct().order_by(JournalEntry.kind)).scalars())


def account_postings(account_id: int, *, offset: int = 0, limit: int | None = 100):
    query = (
        select(Posting, JournalEntry)
        .join(JournalEntry, Posting.entry_id == JournalEntry.id)
        .where(Posting.account_id == account_id)
        .order_by(Posting.id.desc())
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.execute(query))


def count_account_postings(account_id: int) -> int:
    return db.session.execute(select(func.count(Posting.id)).where(Posting.account_id == account_id)).scalar_one()


def trial_balance() -> dict:
    """Debits, credits and balance per account; totals per currency."""
    debit = func.coalesce(func.sum(case((Posting.amount > 0, Posting.amount), else_=0)), 0)
    credit = func.coalesce(func.sum(case((Posting.amount < 0, -Posting.amount), else_=0)), 0)
    rows = db.session.execute(
        select(Account, debit.label("debits"), credit.label("credits"))
        .outerjoin(Posting, Posting.account_id == Account.id)
        .group_by(Account.id)
        .order_by(Account.currency, Account.code)
    ).all()
    accounts = []
    totals: dict[str, dict[str, int]] = defaultdict(lambda: {"debits": 0, "credits": 0})
    for account, debit_sum, credit_sum in rows:
        debits, credits_ = int(debit_sum), int(credit_sum)
        balance = debits - credits_ if account.normal_side == "debit" else credits_ - debits
        accounts.append(
            {
                "code": account.code,
                "currency": account.currency,
                "normal_side": account.normal_side,
                "debits": debits,
                "credits": credits_,
                "balance": balance,
                "cached_balance": account.balance,
                "held": account.held,
            }
        )
        totals[account.currency]["debits"] += debits
        totals[account.currency]["credits"] += credits_
    return {
        "accounts": accounts,
        "totals": dict(totals),
        "balanced": all(t["debits"] == t["credits"] for t in totals.values()),
    }


def reconcile() -> list[str]:
    """Every difference between the cached and recomputed ledger, as sentences."""
    problems: list[str] = []
    sums = dict(
        db.session.execute(select(Posting.account_id, func.sum(Posting.amount)).group_by(Posting.account_id)).all()
    )
    held = dict(
        db.session.execute(
            select(Hold.account_id, func.sum(Hold.amount)).where(Hold.status == "held").group_by(Hold.account_id)
        ).all()
    )
    for account in db.session.execute(select(Account).order_by(Account.id)).scalars():
        raw = int(sums.get(account.id) or 0)
        expected = raw if account.normal_side == "debit" else -raw
        if account.balance != expected:
            problems.append(f"account {account.code}: cached balance {account.balance} != sum of postings {expected}")
        if account.held < 0:
            problems.append(f"account {account.code}: held {account.held} is negative")
        if account.kind == "wallet" and account.balance - account.held < 0:
            problems.append(f"account {account.code}: available {account.balance - account.held} is negative")
        open_holds = int(held.get(account.id) or 0)
        if account.held != open_holds:
            problems.append(f"account {account.code}: cached held {account.held} != open holds {open_holds}")
    unbalanced = db.session.execute(
        select(Posting.entry_id, Posting.currency, func.sum(Posting.amount))
        .group_by(Posting.entry_id, Posting.currency)
        .having(func.sum(Posting.amount) != 0)
    ).all()
    for entry_id, currency, total in unbalanced:
        problems.append(f"entry {entry_id}: {currency} postings sum to {total}, not 0")
    short = (
        db.session.execute(
            select(JournalEntry.id)
            .outerjoin(Posting, Posting.entry_id == JournalEntry.id)
            .group_by(JournalEntry.id)
            .having(func.count(Posting.id) < 2)
        )
        .scalars()
        .all()
    )
    for entry_id in short:
        problems.append(f"entry {entry_id}: fewer than two postings")
    totals = db.session.execute(select(Posting.currency, func.sum(Posting.amount)).group_by(Posting.currency)).all()
    for currency, total in totals:
        if int(total) != 0:
            problems.append(f"currency {currency}: debits and credits differ by {total}")
    return problems
