"""In-app notifications."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import now
from ..db import BigId, UTCDateTime
from ..extensions import db
from ..texts import Msg


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_member", "member_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(String(500))  # English, as the JSON API shows it
    # The message's template and parameters (``texts.Msg.to_json``) for its page in the reader's language;
    # None for notifications written before they were kept (their page shows ``message``).
    params: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    link: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def text(self) -> Msg | str:
        """The message to show: its Msg when stored (``|localize`` translates it), else the English message."""
        return Msg.from_json(self.params) or self.message
