"""Resolve many holds at once: capture some (in part) into one account, release others.

Used when a pool closes: every filled pledge's hold is captured for
``quantity x unit_price`` into the pool's escrow (one two-posting entry per
capture, so each member's statement shows its own line), every other hold
released. Each hold resolves exactly once.
"""

from __future__ import annotations

from ..db import transaction
from .models import Account
from .services import capture_hold, release_hold


def settle_holds(
    captures: list[tuple[int, int]],
    releases: list[int],
    destination: Account | None,
    *,
    kind: str,
    memo: str,
    actor_id: int | None = None,
) -> None:
    if captures and destination is None:
        raise ValueError("captures need a destination account")
    with transaction():
        for hold_id, amount in captures:
            capture_hold(hold_id, amount, destination, kind=kind, memo=memo, actor_id=actor_id)
        for hold_id in releases:
            release_hold(hold_id)
