"""Reshape holds on one wallet: split one hold in two, or merge several into one.

A lending offer holds what it has not yet lent. When part of it is reserved
for a loan request, that part needs a hold of its own (it is captured when
the loan is disbursed, or comes back when the request expires); when a part
comes back, it joins the offer's hold again. ``reshape_holds`` does both:
it releases some held holds of one account and places new ones on the same
account in the same transaction. The new holds never add up to more than the
old ones, so nothing can become overdrawn; each old hold still resolves
exactly once (``released``), and ``held`` on the account changes only by
what is given back.
"""

from __future__ import annotations

from sqlalchemy import select

from ..clock import now
from ..db import transaction
from ..errors import InvalidState, LedgerInvariantError, NotFound
from ..extensions import db
from .models import Hold
from .services import _set_held, lock_balances, sync_accounts


def reshape_holds(release: list[int], place: list[tuple[int, str]]) -> list[Hold]:
    """Release the holds ``release`` (all on one account) and place ``(amount, reference)`` holds there.

    ``sum(amounts) <= sum(released)``; what is not placed again returns to the
    wallet's available balance. Returns the new holds, in the order given.
    """
    if not release:
        raise LedgerInvariantError("reshape_holds needs at least one hold to release")
    if len(set(release)) != len(release):
        raise LedgerInvariantError("a hold appears twice")
    if any(not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0 for amount, _ in place):
        raise LedgerInvariantError("a hold must be a positive int")
    with transaction() as session:
        session.flush()
        rows = db.session.execute(select(Hold.id, Hold.account_id).where(Hold.id.in_(release))).all()
        if len(rows) != len(release):
            raise NotFound(f"No hold {min(set(release) - {row[0] for row in rows})}.")
        accounts = {account_id for _, account_id in rows}
        if len(accounts) != 1:
            raise LedgerInvariantError("reshape_holds works on the holds of one account")
        (account_id,) = accounts
        balances = lock_balances([account_id])  # accounts before holds, as everywhere
        holds = list(
            db.session.execute(
                select(Hold).where(Hold.id.in_(release)).order_by(Hold.id).with_for_update(of=Hold, key_share=True),
                execution_options={"populate_existing": True},
            ).scalars()
        )
        for hold in holds:
            if hold.status != "held":
                raise InvalidState(f"Hold {hold.id} is already {hold.status}.")
        freed = sum(hold.amount for hold in holds)
        placed = sum(amount for amount, _ in place)
        if placed > freed:
            raise LedgerInvariantError(f"reshaping {freed} into {placed}")
        moment = now()
        for hold in holds:
            hold.status = "released"
            hold.resolved_at = moment
        if placed != freed:
            balance = balances[account_id]
            balance.held -= freed - placed
            _set_held(account_id, balance.held)
            sync_accounts([holds[0].account], balances)
        new = [
            Hold(account_id=account_id, amount=amount, captured=0, status="held", reference=ref[:80], created_at=moment)
            for amount, ref in place
        ]
        session.add_all(new)
        session.flush()
    return new
