"""Double-entry ledger: accounts, journal entries, postings, holds, idempotency.

A posting's ``amount`` is signed: > 0 debit, < 0 credit. An account's cached
``balance`` is kept in its normal direction (debit-normal: debits - credits;
credit-normal: credits - debits), so a member's wallet reads positive.
``available = balance - held`` and a wallet's may never go below zero.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import now
from ..db import BigId, UTCDateTime
from ..extensions import db

NORMAL_SIDES = ("debit", "credit")
HOLD_STATUSES = ("held", "captured", "released")


class Account(db.Model):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("normal_side IN ('debit', 'credit')", name="normal_side_known"),
        CheckConstraint("held >= 0", name="held_not_negative"),
        CheckConstraint("kind <> 'wallet' OR balance - held >= 0", name="wallet_available_not_negative"),
        Index("ix_accounts_member", "member_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(24))
    normal_side: Mapped[str] = mapped_column(String(6))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    @property
    def available(self) -> int:
        return self.balance - self.held

    @property
    def sign(self) -> int:
        """+1 if a debit raises the balance, -1 if a credit does."""
        return 1 if self.normal_side == "debit" else -1

    def __repr__(self) -> str:
        return f"<Account {self.code} {self.balance}>"


class JournalEntry(db.Model):
    __tablename__ = "journal_entries"
    __table_args__ = (Index("ix_journal_entries_kind_created", "kind", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, index=True)
    kind: Mapped[str] = mapped_column(String(40))
    memo: Mapped[str] = mapped_column(String(500), default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(300), unique=True, nullable=True)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), unique=True, nullable=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)

    postings: Mapped[list[Posting]] = relationship(back_populates="entry", order_by="Posting.id", lazy="selectin")


class Posting(db.Model):
    __tablename__ = "postings"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        Index("ix_postings_account_id_id", "account_id", "id"),
        Index("ix_postings_entry", "entry_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)

    entry: Mapped[JournalEntry] = relationship(back_populates="postings")
    account: Mapped[Account] = relationship(lazy="joined")


class Hold(db.Model):
    """Part of a wallet set aside; resolved exactly once (captured or released)."""

    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("captured >= 0 AND captured <= amount", name="captured_within_amount"),
        CheckConstraint("status IN ('held', 'captured', 'released')", name="status_known"),
        Index("ix_holds_account_status", "account_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    captured: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(10), default="held")
    reference: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    capture_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), nullable=True)

    account: Mapped[Account] = relationship(lazy="joined")


class IdempotencyRecord(db.Model):
    """The first response to an API command sent with an Idempotency-Key."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("member_id", "key", name="uq_idempotency_member_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
