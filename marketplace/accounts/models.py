"""Members, roles, KYC status and API tokens."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import now
from ..db import BigId, UTCDateTime
from ..extensions import db

ROLES = ("member", "supplier", "operator")
KYC_STATUSES = ("unverified", "verified", "rejected")


class Member(UserMixin, db.Model):
    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint("role IN ('member', 'supplier', 'operator')", name="role_known"),
        CheckConstraint("kyc_status IN ('unverified', 'verified', 'rejected')", name="kyc_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(16), default="member")
    kyc_status: Mapped[str] = mapped_column(String(16), default="unverified")
    kyc_reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)  # en, es, fi, it; None: the browser's
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    # Part of every browser sign-in's id: raising it (at sign-out) makes every session and
    # remember-me cookie issued before useless, including copies of them.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="member", lazy="select")

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    @property
    def is_supplier(self) -> bool:
        return self.role == "supplier"

    @property
    def is_verified(self) -> bool:
        return self.kyc_status == "verified"

    def get_id(self) -> str:
        """The id Flask-Login keeps in the session and the remember-me cookie: ``member.epoch``."""
        return f"{self.id}.{self.session_epoch or 0}"

    def __repr__(self) -> str:
        return f"<Member {self.id} {self.email} {self.role}>"


class ApiToken(db.Model):
    """A Bearer token; only its SHA-256 digest is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_member", "member_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    name: Mapped[str] = mapped_column(String(80), default="API token")
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    member: Mapped[Member] = relationship(back_populates="tokens")

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
