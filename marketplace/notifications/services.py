"""Notify members inside the caller's transaction; list and mark read."""

from __future__ import annotations

from sqlalchemy import func, select, update

from ..bulk import bulk_insert
from ..clock import now
from ..db import transaction
from ..extensions import db
from ..texts import Msg
from .models import Notification


def _stored(message: str | Msg) -> tuple[str, dict | None]:
    """(the English message, its template and parameters when it is a Msg)."""
    if isinstance(message, Msg):
        return str(message)[:500], message.to_json()
    return message[:500], None


def notify(member_id: int, kind: str, message: str | Msg, link: str = "") -> None:
    """``message``: a :class:`~marketplace.texts.Msg`, shown in each reader's language (a plain ``str`` is
    shown as it is to everyone); the English text is kept in ``message`` for the JSON API."""
    text, params = _stored(message)
    db.session.add(
        Notification(member_id=member_id, kind=kind, message=text, params=params, link=link[:200], created_at=now())
    )


def notify_many(rows: list[tuple[int, str, str | Msg, str]]) -> None:
    """Bulk: (member_id, kind, message, link) rows, one INSERT round."""
    if not rows:
        return
    moment = now()
    values = []
    for member_id, kind, message, link in rows:
        text, params = _stored(message)
        values.append(
            {
                "member_id": member_id,
                "kind": kind,
                "message": text,
                "params": params,
                "link": link[:200],
                "created_at": moment,
                "read_at": None,
            }
        )
    bulk_insert(Notification.__table__, values)


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
