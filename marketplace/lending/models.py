"""Loan requests, lending offers, loan parts, loans and their schedules.

Money lives in the ledger; these rows record who lent what to whom, on which
terms, and how much of each scheduled installment has been paid. Accounts:

- ``loan:{loan}:receivable:{cur}`` (debit-normal): principal the borrower owes;
- ``loan:{loan}:part:{part}:{cur}`` (credit-normal): the lender's claim on one
  part, its outstanding principal. The receivable always equals the sum of the
  loan's part claims.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import now
from ..db import BigId, UTCDateTime
from ..extensions import db

REQUEST_STATUSES = ("open", "funded", "expired", "cancelled")
OFFER_STATUSES = ("open", "filled", "cancelled")
PART_STATUSES = ("reserved", "returned", "active", "repaid", "defaulted")
LOAN_STATUSES = ("active", "repaid", "defaulted")
INSTALLMENT_STATUSES = ("due", "paid", "late", "defaulted")


def _known(column: str, values: tuple[str, ...]) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=f"{column}_known")


class LendingMarket(db.Model):
    """One row per currency: locked while matching, so requests and offers match one at a time."""

    __tablename__ = "lending_markets"

    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    matched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoanRequest(db.Model):
    __tablename__ = "loan_requests"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("funded_amount >= 0 AND funded_amount <= amount", name="funded_within_amount"),
        _known("status", REQUEST_STATUSES),
        Index("ix_loan_requests_status_currency", "status", "currency", "id"),
        Index("ix_loan_requests_borrower", "borrower_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    borrower_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    term_months: Mapped[int] = mapped_column(Integer)
    max_rate_bps: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(500), default="")
    monthly_income: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    monthly_debt: Mapped[int] = mapped_column(BigInteger, default=0)
    grade: Mapped[str] = mapped_column(String(1))
    grade_score: Mapped[int] = mapped_column(Integer, default=0)
    grade_reasons: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(10), default="open")
    funded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    loan_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    borrower = relationship("Member", lazy="joined")

    @property
    def remaining(self) -> int:
        return self.amount - self.funded_amount


class LendingOffer(db.Model):
    """A lender's standing offer; ``remaining`` (not yet in any loan) is held by ``hold_id``."""

    __tablename__ = "lending_offers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_within_amount"),
        CheckConstraint("max_part >= 1000", name="max_part_minimum"),
        _known("status", OFFER_STATUSES),
        Index("ix_lending_offers_book", "status", "currency", "min_rate_bps", "id"),
        Index("ix_lending_offers_lender", "lender_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lender_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    min_rate_bps: Mapped[int] = mapped_column(Integer)
    max_part: Mapped[int] = mapped_column(BigInteger)
    terms: Mapped[list] = mapped_column(JSON, default=list)
    grades: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(10), default="open")
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("holds.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Loan(db.Model):
    __tablename__ = "loans"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("outstanding_principal >= 0", name="outstanding_not_negative"),
        _known("status", LOAN_STATUSES),
        Index("ix_loans_borrower", "borrower_id", "id"),
        Index("ix_loans_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("loan_requests.id"), unique=True)
    borrower_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    term_months: Mapped[int] = mapped_column(Integer)
    rate_bps: Mapped[int] = mapped_column(Integer)
    apr_bps: Mapped[int] = mapped_column(Integer)
    fee: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(10), default="active")
    disbursed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outstanding_principal: Mapped[int] = mapped_column(BigInteger)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    borrower = relationship("Member", lazy="joined")
    parts: Mapped[list[LoanPart]] = relationship(
        order_by="LoanPart.id", lazy="selectin", viewonly=True, primaryjoin="Loan.id == foreign(LoanPart.loan_id)"
    )
    installments: Mapped[list[Installment]] = relationship(
        order_by="Installment.number", lazy="selectin", viewonly=True
    )

    @property
    def receivable_code(self) -> str:
        return f"loan:{self.id}:receivable:{self.currency}"


class LoanPart(db.Model):
    """One offer's contribution to one request; after disbursement, a lender's part of the loan."""

    __tablename__ = "loan_parts"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("outstanding_principal >= 0", name="outstanding_not_negative"),
        _known("status", PART_STATUSES),
        Index("ix_loan_parts_request", "request_id", "status"),
        Index("ix_loan_parts_loan", "loan_id"),
        Index("ix_loan_parts_lender", "lender_id", "id"),
        Index("ix_loan_parts_offer", "offer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("loan_requests.id"))
    loan_id: Mapped[int | None] = mapped_column(ForeignKey("loans.id"), nullable=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("lending_offers.id"))
    lender_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    rate_bps: Mapped[int] = mapped_column(Integer)
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("holds.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(10), default="reserved")
    outstanding_principal: Mapped[int] = mapped_column(BigInteger, default=0)
    principal_received: Mapped[int] = mapped_column(BigInteger, default=0)
    interest_received: Mapped[int] = mapped_column(BigInteger, default=0)
    written_off: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    def claim_code(self) -> str:
        return f"loan:{self.loan_id}:part:{self.id}:{self.currency}"


class Installment(db.Model):
    """Row k of a loan's schedule: the sums of its parts' row k, and what has been paid of it."""

    __tablename__ = "loan_installments"
    __table_args__ = (
        UniqueConstraint("loan_id", "number", name="uq_loan_installment_number"),
        CheckConstraint("paid_principal >= 0 AND paid_interest >= 0", name="paid_not_negative"),
        _known("status", INSTALLMENT_STATUSES),
        Index("ix_loan_installments_due", "status", "due_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"))
    number: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[date] = mapped_column(Date)
    principal: Mapped[int] = mapped_column(BigInteger)
    interest: Mapped[int] = mapped_column(BigInteger)
    paid_principal: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_interest: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(10), default="due")
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def total(self) -> int:
        return self.principal + self.interest

    @property
    def paid(self) -> int:
        return self.paid_principal + self.paid_interest

    @property
    def owed(self) -> int:
        return self.total - self.paid if self.status in ("due", "late") else 0


class PartInstallment(db.Model):
    """Row k of one part's own annuity, and what of it reached the lender."""

    __tablename__ = "loan_part_installments"
    __table_args__ = (
        UniqueConstraint("part_id", "number", name="uq_part_installment_number"),
        CheckConstraint("paid_principal >= 0 AND paid_interest >= 0", name="paid_not_negative"),
        CheckConstraint("paid_principal <= principal", name="paid_principal_within"),
        Index("ix_loan_part_installments_loan", "loan_id", "number"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("loan_parts.id"))
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"))
    number: Mapped[int] = mapped_column(Integer)
    principal: Mapped[int] = mapped_column(BigInteger)
    interest: Mapped[int] = mapped_column(BigInteger)
    paid_principal: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_interest: Mapped[int] = mapped_column(BigInteger, default=0)


class LenderCashFlow(db.Model):
    """What a lender paid into (< 0) or received from (> 0) its parts, dated: the XIRR's input."""

    __tablename__ = "lender_cash_flows"
    __table_args__ = (Index("ix_lender_cash_flows_lender", "lender_id", "currency", "on_date"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lender_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    part_id: Mapped[int] = mapped_column(ForeignKey("loan_parts.id"))
    currency: Mapped[str] = mapped_column(String(3))
    on_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(BigInteger)
    interest: Mapped[int] = mapped_column(BigInteger, default=0)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), nullable=True)


class Repayment(db.Model):
    """Money the borrower paid on a loan: a manual repayment, a scheduled collection or a payoff."""

    __tablename__ = "loan_repayments"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("kind IN ('manual', 'collection', 'payoff')", name="kind_known"),
        Index("ix_loan_repayments_loan", "loan_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"))
    kind: Mapped[str] = mapped_column(String(12))
    amount: Mapped[int] = mapped_column(BigInteger)
    principal: Mapped[int] = mapped_column(BigInteger)
    interest: Mapped[int] = mapped_column(BigInteger)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
