"""Post many journal entries in one transaction, fast.

``post_entries`` is ``post_entry`` for a batch: the same rules (each entry
balanced, no wallet's available balance below zero after any entry,
idempotency keys honoured), the same all-or-nothing transaction, but the
database work is done once for the whole batch: every touched account is
locked once in ascending id order, the entries and postings are written in
bulk (PostgreSQL: ``COPY``; elsewhere multi-row INSERTs), and each account's
balance is written once.

The entries are applied in order, so a later entry may spend what an earlier
one brought in; one entry that would overdraw a wallet fails the whole batch
with ``InsufficientFunds`` and nothing is written. The database's own guards
(the deferred balance trigger, the unique idempotency key, the CHECKs) apply
to every row as they do for single entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError

from ..clock import now
from ..db import transaction
from ..errors import InsufficientFunds, LedgerInvariantError
from ..extensions import db
from .models import Account
from .rules import Balance, Overdrawn, UnbalancedEntry, apply_entry, check_balanced, entry_lines
from .services import account_id_of, entries_table, lock_balances, postings_table, sync_accounts, write_balances

_KEY_CHUNK = 1000
_INSERT_ENTRIES = insert(entries_table).returning(entries_table.c.id, sort_by_parameter_order=True)
_INSERT_POSTINGS = insert(postings_table)
_PG_NEW_IDS = (
    "SELECT nextval((SELECT pg_get_serial_sequence('journal_entries', 'id'))::regclass) FROM generate_series(1, %s)"
)
_PG_COPY_ENTRIES = "COPY journal_entries (id, kind, memo, idempotency_key, actor_id, created_at) FROM STDIN"
_PG_COPY_POSTINGS = "COPY postings (entry_id, account_id, currency, amount, balance_after) FROM STDIN"
_PG_SET_BALANCES = (
    "UPDATE accounts SET balance = b.balance "
    "FROM unnest(%s::bigint[], %s::bigint[]) AS b(id, balance) WHERE accounts.id = b.id"
)

EntryRow = tuple[str, str, str | None, int | None]  # kind, memo, idempotency key, actor id
PostingRow = tuple[int, int, str, int, int]  # entry's index in the batch, account id, currency, amount, balance after


@dataclass(frozen=True)
class NewEntry:
    """One entry of a batch: ``postings`` are ``(account or account id, signed amount)``, > 0 debit."""

    kind: str
    postings: Sequence[tuple[Account | int, int]]
    memo: str = ""
    idempotency_key: str | None = None
    actor_id: int | None = None


def _existing_keys(keys: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    connection = db.session.connection()
    for start in range(0, len(keys), _KEY_CHUNK):
        chunk = keys[start : start + _KEY_CHUNK]
        rows = connection.execute(
            select(entries_table.c.idempotency_key, entries_table.c.id).where(
                entries_table.c.idempotency_key.in_(chunk)
            )
        )
        found.update({key: entry_id for key, entry_id in rows})
    return found


def post_entries(entries: Iterable[NewEntry]) -> list[int]:
    """Post ``entries`` in one transaction; return their ids in the same order.

    An entry whose idempotency key was already used (before or earlier in
    the batch) posts nothing and gets the first entry's id. Raises
    ``LedgerInvariantError`` for an unbalanced entry and ``InsufficientFunds``
    for an overdraft; either way nothing is written.
    """
    batch = [(e, [(account_id_of(account), amount) for account, amount in e.postings]) for e in entries]
    if not batch:
        return []
    with transaction() as session:
        session.flush()
        balances = lock_balances({account_id for _, pairs in batch for account_id, _ in pairs})
        keys = [e.idempotency_key for e, _ in batch if e.idempotency_key is not None]
        known = _existing_keys(keys) if keys else {}
        entry_rows: list[EntryRow] = []
        posting_rows: list[PostingRow] = []
        slots: list[int | str] = []  # per entry: its index in entry_rows, or the key it repeats
        batch_keys: dict[str, int] = {}
        for index, (entry, pairs) in enumerate(batch):
            key = entry.idempotency_key
            if key is not None and (key in known or key in batch_keys):
                slots.append(key)
                continue
            try:
                check_balanced(entry_lines(balances, pairs))
            except UnbalancedEntry as exc:
                raise LedgerInvariantError(f"entry {index} of the batch: {exc}") from exc
            try:
                after = apply_entry(balances, pairs)
            except Overdrawn as exc:
                raise InsufficientFunds(
                    errors={"amount": [f"entry {index} of the batch: available balance is {exc.available}"]}
                ) from None
            row = len(entry_rows)
            if key is not None:
                batch_keys[key] = row
            slots.append(row)
            entry_rows.append((entry.kind, entry.memo[:500], key, entry.actor_id))
            posting_rows += [
                (row, account_id, balances[account_id].currency, amount, balance_after)
                for (account_id, amount), balance_after in zip(pairs, after, strict=True)
            ]
        if not entry_rows:
            return [known[slot] for slot in slots]
        write = _write_postgresql if session.connection().dialect.name == "postgresql" else _write_portable
        ids = write(entry_rows, posting_rows, balances, now())
        sync_accounts((account for e, _ in batch for account, _ in e.postings), balances)
    return [ids[slot] if isinstance(slot, int) else known.get(slot) or ids[batch_keys[slot]] for slot in slots]


def _write_postgresql(
    entry_rows: list[EntryRow], posting_rows: list[PostingRow], balances: dict[int, Balance], created_at: datetime
) -> list[int]:
    """Entry ids from the sequence, entries and postings by COPY, balances in one UPDATE."""
    connection = db.session.connection()
    dbapi = connection.dialect.loaded_dbapi
    with connection.connection.dbapi_connection.cursor() as cursor:
        try:
            cursor.execute(_PG_NEW_IDS, (len(entry_rows),))
            ids = sorted(row[0] for row in cursor.fetchall())
            with cursor.copy(_PG_COPY_ENTRIES) as copy:
                for entry_id, (kind, memo, key, actor_id) in zip(ids, entry_rows, strict=True):
                    copy.write_row((entry_id, kind, memo, key, actor_id, created_at))
            with cursor.copy(_PG_COPY_POSTINGS) as copy:
                for row, account_id, currency, amount, balance_after in posting_rows:
                    copy.write_row((ids[row], account_id, currency, amount, balance_after))
            cursor.execute(_PG_SET_BALANCES, (list(balances), [b.balance for b in balances.values()]))
        except dbapi.Error as exc:
            raise DBAPIError.instance("post_entries", None, exc, dbapi.Error) from exc
    return ids


def _write_portable(
    entry_rows: list[EntryRow], posting_rows: list[PostingRow], balances: dict[int, Balance], created_at: datetime
) -> list[int]:
    """Multi-row INSERTs that return the new ids in order, then one UPDATE per account."""
    connection = db.session.connection()
    ids = (
        connection.execute(
            _INSERT_ENTRIES,
            [
                {
                    "kind": kind,
                    "memo": memo,
                    "idempotency_key": key,
                    "actor_id": actor_id,
                    "reverses_id": None,
                    "created_at": created_at,
                }
                for kind, memo, key, actor_id in entry_rows
            ],
        )
        .scalars()
        .all()
    )
    connection.execute(
        _INSERT_POSTINGS,
        [
            {
                "entry_id": ids[row],
                "account_id": account_id,
                "currency": currency,
                "amount": amount,
                "balance_after": balance_after,
            }
            for row, account_id, currency, amount, balance_after in posting_rows
        ],
    )
    write_balances(balances)
    return ids
