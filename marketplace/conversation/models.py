"""Comment threads and verified reviews."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import now
from ..db import BigId, UTCDateTime
from ..extensions import db


class Comment(db.Model):
    __tablename__ = "comments"
    __table_args__ = (
        CheckConstraint("target_type IN ('pool', 'loan_request')", name="target_known"),
        Index("ix_comments_target", "target_type", "target_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    target_type: Mapped[str] = mapped_column(String(20))
    target_id: Mapped[int] = mapped_column(BigId)
    author_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    author = relationship("Member", lazy="joined")


class Review(db.Model):
    """Only from a member whose pledge was filled, once per pool, after delivery."""

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("pool_id", "member_id", name="uq_reviews_pool_member"),
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
        Index("ix_reviews_supplier", "supplier_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"))
    supplier_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    rating: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    author = relationship("Member", foreign_keys=[member_id], lazy="joined")
    pool = relationship("Pool", lazy="joined")
