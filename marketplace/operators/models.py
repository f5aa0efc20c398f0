"""Operator audit log and the settable test clock."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import BigId, UTCDateTime
from ..extensions import db


def _now():
    from ..clock import now

    return now()


class AuditLog(db.Model):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(60))
    target_type: Mapped[str] = mapped_column(String(40), default="")
    target_id: Mapped[str] = mapped_column(String(120), default="")
    details: Mapped[str] = mapped_column(Text, default="{}")
    ip: Mapped[str] = mapped_column(String(64), default="")

    actor = relationship("Member", lazy="joined")


class TestClock(db.Model):
    """One row (id 1) holding the frozen "now" when the test clock is on."""

    __tablename__ = "test_clock"
    __test__ = False  # not a pytest class

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    now: Mapped[datetime] = mapped_column(UTCDateTime)

    @classmethod
    def current(cls) -> datetime | None:
        row = db.session.get(cls, 1, populate_existing=True)
        return row.now if row else None
