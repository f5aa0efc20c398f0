"""Buying pools, pledges, supplier bids with volume tiers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import now
from ..db import BigId, UTCDateTime
from ..extensions import db
from ..texts import Msg

POOL_STATUSES = ("open", "awarded", "failed", "cancelled", "delivered")
PLEDGE_STATUSES = ("active", "withdrawn", "filled", "released")
PLEDGE_FUNDING = ("wallet", "card")  # a hold on the wallet, or a card authorization (payments.CardAuthorization)
BID_STATUSES = ("active", "replaced", "won", "lost", "void")
COUNTED_PLEDGES = ("active", "filled", "released")  # a pool's volume: every pledge but the withdrawn
TOTAL_SHARDS = 16  # rows of PoolPledgeTotal per pool (see there); a change needs a migration (CHECK, rows)


class Pool(db.Model):
    __tablename__ = "pools"
    __table_args__ = (
        CheckConstraint("min_volume > 0", name="min_volume_positive"),
        CheckConstraint("status IN ('open', 'awarded', 'failed', 'cancelled', 'delivered')", name="status_known"),
        Index("ix_pools_status_deadline", "status", "deadline"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    unit: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    min_volume: Mapped[int] = mapped_column(BigInteger)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(12), default="open")
    organizer_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The award, recorded once at close.
    winning_bid_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    award_supplier_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    award_unit_price: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    award_volume: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    award_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    award_fee: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    organizer = relationship("Member", foreign_keys=[organizer_id], lazy="joined")

    @property
    def escrow_code(self) -> str:
        return f"pool:{self.id}:escrow:{self.currency}"

    @property
    def award(self) -> dict | None:
        if self.winning_bid_id is None:
            return None
        return {
            "bid_id": self.winning_bid_id,
            "supplier_id": self.award_supplier_id,
            "unit_price": self.award_unit_price,
            "volume": self.award_volume,
            "total": self.award_total,
            "fee": self.award_fee,
        }


class Pledge(db.Model):
    __tablename__ = "pledges"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("max_unit_price > 0", name="max_unit_price_positive"),
        CheckConstraint("status IN ('active', 'withdrawn', 'filled', 'released')", name="status_known"),
        CheckConstraint("funding IN ('wallet', 'card')", name="funding_known"),
        Index("ix_pledges_pool_status", "pool_id", "status"),
        Index("ix_pledges_member", "member_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    quantity: Mapped[int] = mapped_column(BigInteger)
    max_unit_price: Mapped[int] = mapped_column(BigInteger)
    held_amount: Mapped[int] = mapped_column(BigInteger)
    charged_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(10), default="active")
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("holds.id"), nullable=True)
    funding: Mapped[str] = mapped_column(String(6), default="wallet", server_default="wallet")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    pool = relationship("Pool", lazy="joined")


class Bid(db.Model):
    __tablename__ = "bids"
    __table_args__ = (
        CheckConstraint("capacity > 0", name="capacity_positive"),
        CheckConstraint("status IN ('active', 'replaced', 'won', 'lost', 'void')", name="status_known"),
        Index("ix_bids_pool_status", "pool_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"))
    supplier_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    capacity: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    # How the bid cleared, recorded at close for the side-by-side comparison.
    outcome_cleared: Mapped[bool | None] = mapped_column(nullable=True)
    outcome_volume: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    outcome_unit_price: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    outcome_members_served: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    outcome_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    outcome_explanation: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # The explanation as a translatable text (``texts.Msg.to_json``); None for bids closed before it was kept.
    outcome_params: Mapped[dict | None] = mapped_column(JSON, nullable=True)

    tiers: Mapped[list[BidTier]] = relationship(order_by="BidTier.min_volume", lazy="selectin", back_populates="bid")
    supplier = relationship("Member", lazy="joined")

    @property
    def outcome(self) -> dict | None:
        if self.outcome_cleared is None:
            return None
        return {
            "cleared": self.outcome_cleared,
            "volume": self.outcome_volume,
            "unit_price": self.outcome_unit_price,
            "members_served": self.outcome_members_served,
            "total": self.outcome_total,
            "winner": self.status == "won",
            "reason": self.outcome_reason,
            "explanation": self.outcome_explanation,
            "message": Msg.from_json(self.outcome_params),  # pages only: the API's schema leaves it out
        }


class BidTier(db.Model):
    __tablename__ = "bid_tiers"
    __table_args__ = (
        CheckConstraint("min_volume > 0", name="min_volume_positive"),
        CheckConstraint("unit_price > 0", name="unit_price_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bid_id: Mapped[int] = mapped_column(ForeignKey("bids.id"), index=True)
    min_volume: Mapped[int] = mapped_column(BigInteger)
    unit_price: Mapped[int] = mapped_column(BigInteger)

    bid: Mapped[Bid] = relationship(back_populates="tiers")


class PoolPledgeTotal(db.Model):
    """A pool's pledged volume and pledge count (withdrawn pledges excluded), kept by the database itself.

    Triggers on ``pledges`` (marketplace/pools/ddl.py) add and subtract each
    pledge's part in the same transaction as the write, whatever makes it (a
    service, a bulk update, plain SQL), so a pool's totals are the sum of its
    rows here: a fixed number of rows, however many pledges it has (summing
    the pledges themselves cost a read 2.3 ms of PostgreSQL at 15,000 of
    them). Each pool has :data:`TOTAL_SHARDS` rows, made with the pool by a
    trigger on ``pools``, and a pledge counts in row ``id % TOTAL_SHARDS``:
    pledges made side by side mostly update different rows, where a single
    row would queue every pledge of a busy pool behind the one before.
    ``flask ledger-check`` compares them with the pledges
    (:func:`marketplace.pools.queries.total_problems`).
    """

    __tablename__ = "pool_pledge_totals"
    __table_args__ = (
        CheckConstraint(f"shard >= 0 AND shard < {TOTAL_SHARDS}", name="shard_in_range"),
        CheckConstraint("volume >= 0", name="volume_not_negative"),
        CheckConstraint("pledges >= 0", name="pledges_not_negative"),
    )

    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id", ondelete="CASCADE"), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    volume: Mapped[int] = mapped_column(BigInteger, default=0)
    pledges: Mapped[int] = mapped_column(BigInteger, default=0)
