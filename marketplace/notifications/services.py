"""Notify members inside the caller's transaction; list and mark read."""

from __future__ import annotations

from sqlalchemy import func, select, update

from ..bulk import bulk_insert
from ..clock import now
from ..db import transaction
from ..extensions import db
from .models import Notification


def notify(member_id: int, kind: str, message: str, link: str = "") -> None:
    db.session.add(
        Notification(member_id=member_id, kind=kind, message=message[:500], link=link[:200], created_at=now())
    )


def notify_many(rows: list[tuple[int, str, str, str]]) -> None:
    """Bulk: (member_id, kind, message, link) rows, one INSERT round."""
    if not rows:
        return
    moment = now()
    bulk_insert(
        Notification.__table__,
        [
            {"member_id": m, "kind": k, "message": msg[:500], "link": link[:200], "created_at": moment, "read_at": None}
            for m, k, msg, link in rows
        ],
    )


def for_member(member_id: int, *, limit: int = 50, offset: int = 0) -> list[Notification]:
    return list(
        db.session.execute(
            select(Notification)
            .where(Notification.member_id == member_id)
            .order_by(Notification.id.desc())
            .limit(limit)
            .offset(offset)
        ).scalars()
    )


def count_for_member(member_id: int) -> int:
    return db.session.execute(
        select(func.count(Notification.id)).where(Notification.member_id == member_id)
    ).scalar_one()


def unread_count(member_id: int) -> int:
    return db.session.execute(
        select(func.count(Notification.id)).where(Notification.member_id == member_id, Notification.read_at.is_(None))
    ).scalar_one()


def mark_all_read(member_id: int) -> int:
    with transaction():
        result = db.session.execute(
            update(Notification)
            .where(Notification.member_id == member_id, Notification.read_at.is_(None))
            .values(read_at=now())
        )
    return result.rowcount or 0
