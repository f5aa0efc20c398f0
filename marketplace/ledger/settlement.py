"""Resolve many holds at once: capture some (in part) into one account, release the rest.

Used when a pool closes (every filled pledge's hold captured for
``quantity x unit_price`` into the pool's escrow, every other hold released)
and when an open pool is cancelled (every hold released). The work is done
for the whole set at once, so a pool of 100,000 pledges settles in seconds:

1. every touched balance row is locked once, in ascending id order (so two
   settlements sharing wallets, or a settlement and a transfer, never
   deadlock);
2. the holds are locked and must all still be ``held`` (each resolves
   exactly once);
3. each wallet's ``held`` drops by the sum of its holds, in one statement;
4. each capture is its own two-posting journal entry (wallet -> destination),
   so every member's statement shows its own line, posted through
   ``batch.post_entries`` with the ledger's usual checks;
5. the holds are marked captured/released in one statement.
"""

from __future__ import annotations

from collections import defaultdict

from ..bulk import bulk_update, select_by_ids
from ..clock import now
from ..db import transaction
from ..errors import InvalidState, LedgerInvariantError, NotFound
from .batch import NewEntry, post_entries
from .models import Account, Hold
from .services import account_id_of, lock_balances

_holds = Hold.__table__


def _load_holds(hold_ids: list[int]) -> dict[int, tuple[int, int]]:
    """hold id -> (account id, amount), without locking (the accounts come first)."""
    found = {
        hold_id: (account_id, amount)
        for hold_id, account_id, amount in select_by_ids(_holds, ["id", "account_id", "amount"], hold_ids)
    }
    missing = set(hold_ids) - set(found)
    if missing:
        raise NotFound(f"No hold {min(missing)}.")
    return found


def _lock_holds(hold_ids: list[int]) -> None:
    """Lock the holds (after their accounts); every one must still be held."""
    for hold_id, status in select_by_ids(_holds, ["id", "status"], hold_ids, lock=True):
        if status != "held":
            raise InvalidState(f"Hold {hold_id} is already {status}.")


def _write_resolutions(rows: list[dict], moment) -> None:
    bulk_update(_holds, rows, constants={"resolved_at": moment})


def settle_holds(
    captures: list[tuple[int, int]] | list[tuple[int, int, int]],
    releases: list[int],
    destination: Account | None,
    *,
    kind: str,
    memo: str,
    actor_id: int | None = None,
) -> list[int]:
    """Capture ``(hold id, amount)`` pairs into ``destination``; release ``releases``.

    A capture may name its own destination account id as a third element
    ``(hold id, amount, account id)`` (a loan's parts each go to their own
    claim account). Returns the capture entries' ids (in the order of
    ``captures``). All or nothing: any hold already resolved raises
    InvalidState and nothing is written.
    """
    destination_id = account_id_of(destination) if destination is not None else None
    targets = [capture[2] if len(capture) > 2 else destination_id for capture in captures]
    if any(target is None for target in targets):
        raise LedgerInvariantError("captures need a destination account")
    captures = [(capture[0], capture[1]) for capture in captures]
    hold_ids = [hold_id for hold_id, _ in captures] + list(releases)
    if len(set(hold_ids)) != len(hold_ids):
        raise LedgerInvariantError("a hold appears twice in one settlement")
    if not hold_ids:
        return []
    with transaction() as session:
        session.flush()
        holds = _load_holds(hold_ids)
        for hold_id, amount in captures:
            if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= holds[hold_id][1]:
                raise LedgerInvariantError(f"capture of {amount} outside hold {hold_id} of {holds[hold_id][1]}")
        account_ids = {account_id for account_id, _ in holds.values()} | set(targets)
        balances = lock_balances(account_ids)
        _lock_holds(hold_ids)

        released: dict[int, int] = defaultdict(int)
        for account_id, amount in holds.values():
            released[account_id] += amount
        for account_id, amount in released.items():
            balances[account_id].held -= amount
        # The rows are locked: writing the new absolute values is safe.
        bulk_update(Account.__table__, [{"id": a, "held": balances[a].held} for a in released])

        if any(balances[target].normal_side != "credit" for target in set(targets)):
            raise LedgerInvariantError("holds are captured into a credit-normal account (escrow, wallet)")
        entries = (
            NewEntry(
                kind=kind,
                postings=[(holds[hold_id][0], amount), (target, -amount)],
                memo=memo,
                actor_id=actor_id,
            )
            for (hold_id, amount), target in zip(captures, targets, strict=True)
        )
        entry_ids = post_entries(entries) if captures else []

        moment = now()
        rows = [
            {"id": hold_id, "status": "captured", "captured": amount, "capture_entry_id": entry_id}
            for (hold_id, amount), entry_id in zip(captures, entry_ids, strict=True)
        ]
        rows += [{"id": hold_id, "status": "released", "captured": 0, "capture_entry_id": None} for hold_id in releases]
        _write_resolutions(rows, moment)
        for obj in list(session.identity_map.values()):
            if isinstance(obj, (Hold, Account)):
                session.expire(obj)
    return entry_ids
