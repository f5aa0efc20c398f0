"""Payments in and out of the marketplace through a provider.

- ``Payment``: a wallet deposit (one PaymentIntent) or a withdrawal (split
  into ``PayoutPart`` rows: refunds to earlier card deposits, then a manual
  payout for the rest).
- ``StripeCustomer``: the member's Stripe Customer, created once.
- ``WebhookEvent``: every Stripe event id processed, so a replay does nothing.
- ``CardAuthorization``: a card hold (PaymentIntent with manual capture)
  backing a card-funded pool pledge.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import now
from ..db import BigId, UTCDateTime
from ..extensions import db


class Payment(db.Model):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("direction IN ('deposit', 'withdrawal')", name="direction_known"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status_known"),
        Index("ix_payments_member", "member_id", "id"),
        # One payment per provider object: the API response and the webhook find the same row.
        Index(
            "uq_payments_provider_ref",
            "provider",
            "provider_ref",
            unique=True,
            postgresql_where=text("provider_ref <> ''"),
            sqlite_where=text("provider_ref <> ''"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    direction: Mapped[str] = mapped_column(String(10))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    provider: Mapped[str] = mapped_column(String(20))
    provider_ref: Mapped[str] = mapped_column(String(120), default="")
    payment_method: Mapped[str] = mapped_column(String(120), default="")
    status: Mapped[str] = mapped_column(String(10), default="pending")
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failure_message: Mapped[str | None] = mapped_column(String(300), nullable=True)


class StripeCustomer(db.Model):
    """A member's Stripe Customer: created the first time the member pays by card."""

    __tablename__ = "stripe_customers"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True, autoincrement=False)
    customer_id: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class WebhookEvent(db.Model):
    """A provider event already processed (its id is the key): replays are no-ops."""

    __tablename__ = "webhook_events"

    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, index=True)
    result: Mapped[str] = mapped_column(Text, default="{}")


PART_METHODS = ("refund", "manual")
PART_STATUSES = ("pending", "sent", "queued", "paid", "failed", "returned")


class PayoutPart(db.Model):
    """One way part of a withdrawal leaves: a refund of a card deposit, or a manual payout.

    ``refund``: pending (not sent yet) -> sent (the provider is refunding) -> paid.
    ``manual``: queued (waits for an operator) -> sent (provider payout made) -> paid,
    or queued -> returned (rejected: the money goes back to the wallet).
    A part that fails at the provider becomes ``failed`` and a new queued manual
    part takes over its amount (``replaces_id``). Until a part is paid or
    returned its money sits in the member's pending-payouts account.
    """

    __tablename__ = "payout_parts"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("method IN ('refund', 'manual')", name="method_known"),
        CheckConstraint(
            "status IN ('pending', 'sent', 'queued', 'paid', 'failed', 'returned')",
            name="status_known",
        ),
        Index("ix_payout_parts_status", "status", "id"),
        Index("ix_payout_parts_source", "provider", "source_ref"),
        Index("ix_payout_parts_payment", "payment_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    method: Mapped[str] = mapped_column(String(10))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    provider: Mapped[str] = mapped_column(String(20))
    source_ref: Mapped[str] = mapped_column(String(120), default="")  # the PaymentIntent a refund goes back to
    provider_ref: Mapped[str] = mapped_column(String(120), default="")  # the provider's refund or payout id
    status: Mapped[str] = mapped_column(String(10))
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("payout_parts.id"), nullable=True)
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    settle_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), nullable=True)
    failure_message: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


AUTHORIZATION_STATUSES = ("authorized", "capture_due", "cancel_due", "captured", "canceled", "capture_failed")


class CardAuthorization(db.Model):
    """A card hold backing a pledge: captured in part at clearing, or cancelled.

    ``authorized`` backs an active pledge; the pool's close or the pledge's end
    marks it ``capture_due`` (with ``capture_amount``) or ``cancel_due``, and
    the provider call that follows (after the commit, or the run-due sweep)
    makes it ``captured``, ``canceled`` or ``capture_failed``.
    """

    __tablename__ = "card_authorizations"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "status IN ('authorized', 'capture_due', 'cancel_due', 'captured', 'canceled', 'capture_failed')",
            name="status_known",
        ),
        CheckConstraint("captured_amount >= 0 AND captured_amount <= amount", name="captured_within_amount"),
        Index("ix_card_authorizations_status", "status", "id"),
        Index("ix_card_authorizations_pledge", "pledge_id"),
        Index(
            "uq_card_authorizations_provider_intent",
            "provider",
            "intent_id",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pledge_id: Mapped[int] = mapped_column(ForeignKey("pledges.id"))
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    provider: Mapped[str] = mapped_column(String(20))
    intent_id: Mapped[str] = mapped_column(String(120))
    payment_method: Mapped[str] = mapped_column(String(120), default="")
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="authorized")
    authorized_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    capture_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    captured_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    capture_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), nullable=True)
    expiry_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failure_message: Mapped[str | None] = mapped_column(String(300), nullable=True)

    @property
    def live(self) -> bool:
        """Still a hold on the member's card (not yet captured or cancelled)."""
        return self.status in ("authorized", "capture_due", "cancel_due")
