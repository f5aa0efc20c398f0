"""Operator services: the audit log, the test clock, ledger views, run-due."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select

from ..clock import now
from ..db import transaction
from ..errors import InvalidState
from ..extensions import db
from ..texts import N_, Msg
from .models import AuditLog, TestClock


def record_audit(
    actor_id: int | None, action: str, target_type: str = "", target_id="", details: dict | None = None, *, ip: str = ""
) -> AuditLog:
    """Write one audit row inside the caller's transaction."""
    row = AuditLog(
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        details=json.dumps(details or {}, sort_keys=True, default=str),
        ip=ip[:64],
        created_at=now(),
    )
    db.session.add(row)
    db.session.flush()
    return row


def audit_entries(limit: int = 100, offset: int = 0, action: str | None = None) -> list[AuditLog]:
    query = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit).offset(offset)
    if action:
        query = query.where(AuditLog.action == action)
    return list(db.session.execute(query).scalars())


def set_test_clock(operator_id: int, new_now: datetime, *, ip: str = "") -> datetime:
    """Move the test clock forward (never back)."""
    with transaction():
        row = db.session.execute(select(TestClock).where(TestClock.id == 1).with_for_update()).scalar_one_or_none()
        current = row.now if row else now()
        if new_now < current:
            raise InvalidState(
                f"The test clock only moves forward; it reads {current.isoformat()}.",
                errors={"now": [Msg(N_("must not be earlier than the current clock"))]},
            )
        if row is None:
            db.session.add(TestClock(id=1, now=new_now))
        else:
            row.now = new_now
        record_audit(
            operator_id, "test_clock.set", "clock", 1, {"from": current.isoformat(), "to": new_now.isoformat()}, ip=ip
        )
    return new_now


def record_audit_committed(actor_id, action, target_type="", target_id="", details=None, *, ip: str = "") -> None:
    """Audit an action that ran in its own transactions (e.g. run-due)."""
    with transaction():
        record_audit(actor_id, action, target_type, target_id, details, ip=ip)
