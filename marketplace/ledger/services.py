"""The ledger's service layer: the only code that writes balances.

``post_entry`` (and ``transfer``) posts a balanced journal entry;
``place_hold``, ``capture_hold`` and ``release_hold`` run two-phase holds;
``reverse_entry`` undoes an entry with its mirror image. Balance rows are
locked with ``SELECT ... FOR NO KEY UPDATE`` in ascending id order, so
concurrent transfers never deadlock, and every check runs on the locked,
fresh values: the pure rules in ``rules.py`` decide, this module reads and
writes. ``batch.post_entries`` does the same for many entries at once.

The posting path is lean because it is the hottest code in the product: on
PostgreSQL a transfer is one locking SELECT and one statement that inserts the
entry and its postings and stores the balances (plain driver SQL, prepared);
elsewhere it uses Core statements. The caller's ORM objects are kept in step
as ``set_committed_value`` would and the new entry is attached as a loaded row is,
without a SELECT.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import instance_state, set_committed_value

from ..clock import now
from ..db import attach_loaded, transaction
from ..errors import InsufficientFunds, InvalidState, LedgerInvariantError, NotFound
from ..extensions import db
from ..texts import N_, Money, Msg
from .models import Account, Hold, JournalEntry, Posting
from .rules import (
    Balance,
    Overdrawn,
    UnbalancedEntry,
    apply_entry,
    check_balanced,
    entry_lines,
    normal_delta,
)

accounts_table = Account.__table__
entries_table = JournalEntry.__table__
postings_table = Posting.__table__

# ---------------------------------------------------------------- accounts


def wallet_code(member_id: int, currency: str) -> str:
    return f"member:{member_id}:wallet:{currency}"


def external_code(provider: str, currency: str) -> str:
    return f"external:{provider}:{currency}"


def fees_code(currency: str) -> str:
    return f"platform:fees:{currency}"


ACCOUNT_KINDS = {
    # kind: normal side
    "wallet": "credit",  # what the platform owes a member
    "escrow": "credit",  # money held for a pool or loan until settlement
    "fees": "credit",  # platform revenue
    "external": "debit",  # cash at a payment provider
    "pending_payouts": "credit",  # withdrawn from a wallet, not yet confirmed paid out by the provider
    "loan": "debit",  # principal a borrower owes on a loan (its receivable)
    "loan_part": "credit",  # a lender's claim on one loan part: its outstanding principal
}


def _dialect_insert(table):
    """An INSERT that supports ``on_conflict_do_nothing`` on this database."""
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - other backends
        return None
    return dialect_insert(table)


def ensure_account(code: str, currency: str, kind: str, member_id: int | None = None) -> Account:
    """Return the account with ``code``, creating it if needed (race-safe)."""
    account = db.session.execute(select(Account).where(Account.code == code)).scalar_one_or_none()
    if account is not None:
        return account
    values = dict(
        code=code,
        currency=currency,
        kind=kind,
        normal_side=ACCOUNT_KINDS[kind],
        member_id=member_id,
        balance=0,
        held=0,
        created_at=now(),
    )
    statement = _dialect_insert(Account)
    if statement is not None:
        db.session.execute(statement.values(**values).on_conflict_do_nothing(index_elements=["code"]))
    else:  # pragma: no cover - other backends
        try:
            with db.session.begin_nested():
                db.session.execute(insert(Account).values(**values))
        except IntegrityError:
            pass
    return db.session.execute(select(Account).where(Account.code == code)).scalar_one()


def wallet_account(member_id: int, currency: str) -> Account:
    return ensure_account(wallet_code(member_id, currency), currency, "wallet", member_id)


def fees_account(currency: str) -> Account:
    return ensure_account(fees_code(currency), currency, "fees")


def external_account(provider: str, currency: str) -> Account:
    return ensure_account(external_code(provider, currency), currency, "external")


def find_account(code: str) -> Account:
    account = db.session.execute(select(Account).where(Account.code == code)).scalar_one_or_none()
    if account is None:
        raise NotFound(f"No account with code {code!r}.")
    return account


def account_id_of(account: Account | int) -> int:
    """An account's id, without reloading an instance expired by a commit."""
    if isinstance(account, int):
        return account
    key = instance_state(account).key  # (class, primary key, token) once persistent
    return key[1][0] if key is not None else account.id


_LOCK_BALANCES = (
    select(
        accounts_table.c.id,
        accounts_table.c.code,
        accounts_table.c.currency,
        accounts_table.c.kind,
        accounts_table.c.normal_side,
        accounts_table.c.balance,
        accounts_table.c.held,
    )
    .where(accounts_table.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(accounts_table.c.id)
    .with_for_update(key_share=True)
)
_SET_BALANCE = (
    update(accounts_table).where(accounts_table.c.id == bindparam("_id")).values(balance=bindparam("_balance"))
)
_SET_HELD = update(accounts_table).where(accounts_table.c.id == bindparam("_id")).values(held=bindparam("_held"))
_INSERT_ENTRY = insert(entries_table).returning(entries_table.c.id)
_ENTRY_COLUMNS = ("kind", "memo", "idempotency_key", "actor_id", "reverses_id", "created_at")
_INSERT_POSTINGS = insert(postings_table)


def _pg_cursor(connection, role: str):
    """The session's DBAPI connection's cursor for ``role`` (the lock, the write), made once per connection.

    Cursors live in the pool's per-connection ``info``, which SQLAlchemy
    clears whenever the DBAPI connection is replaced; a cursor outlives
    transactions. One per role, because the driver keeps a cursor's
    adapters only while it runs the same statement again.
    """
    fairy = connection.connection
    cursor = fairy.info.get(role)
    if cursor is None or cursor.closed:
        from psycopg.types.numeric import Int8BinaryDumper, Int8Dumper

        cursor = fairy.info[role] = fairy.dbapi_connection.cursor()
        # Every int as bigint (the columns' type): by default the driver picks int2, int4 or int8 by
        # each value's size, and each mix of those is a prepared statement of its own.
        cursor.adapters.register_dumper(int, Int8Dumper)
        cursor.adapters.register_dumper(int, Int8BinaryDumper)
    return cursor


def _pg_fetch(connection, sql: str, params, role: str) -> list[tuple]:
    """Run driver SQL on the session's own DBAPI connection, inside its transaction.

    PostgreSQL's fast path: it skips SQLAlchemy's statement and result
    machinery (a third of a transfer's CPU time). Errors go through the
    connection's own handler, as for any SQLAlchemy statement: they are
    wrapped in the usual ``sqlalchemy.exc`` classes and a lost connection is
    invalidated (with the pool's other connections of its age), so the
    ``transaction()`` around it rolls back cleanly and the next one reconnects.
    """
    cursor = _pg_cursor(connection, role)
    try:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall()
    except connection.dialect.loaded_dbapi.Error as exc:
        connection._handle_dbapi_exception(exc, sql, params, None, None)
        raise  # not reached: the handler raises the wrapped error


@functools.cache
def _pg_lock_sql(count: int) -> str:
    """The locking SELECT for ``count`` ids, as plain driver SQL (PostgreSQL's fast path)."""
    where = f"id IN ({', '.join(['%s'] * count)})" if count <= 100 else "id = ANY(%s)"
    return (
        "SELECT id, code, currency, kind, normal_side, balance, held FROM accounts "
        f"WHERE {where} ORDER BY id FOR NO KEY UPDATE"
    )


def lock_balances(account_ids: Iterable[int]) -> dict[int, Balance]:
    """Lock the accounts' rows (ascending id order) and return their fresh balances."""
    return _lock_balances(db.session.connection(), account_ids)


def _lock_balances(connection, account_ids: Iterable[int]) -> dict[int, Balance]:
    """``lock_balances`` on the session's connection, which the caller already holds."""
    ids = sorted(set(account_ids))
    if connection.dialect.name == "postgresql":
        params = tuple(ids) if len(ids) <= 100 else (ids,)
        rows = _pg_fetch(connection, _pg_lock_sql(len(ids)), params, "ledger.lock")
    else:
        rows = connection.execute(_LOCK_BALANCES, {"ids": ids}).all()
    if len(rows) != len(ids):
        raise LedgerInvariantError("posting to an account that does not exist")
    return {row[0]: Balance(*row[1:]) for row in rows}


def write_balances(balances: dict[int, Balance]) -> None:
    """Store the new balances of locked accounts: one UPDATE per account."""
    db.session.connection().execute(
        _SET_BALANCE, [{"_id": account_id, "_balance": b.balance} for account_id, b in balances.items()]
    )


def sync_accounts(accounts: Iterable, balances: dict[int, Balance]) -> None:
    """Show the caller's Account objects the values just written, without a reload."""
    for account in accounts:
        if isinstance(account, int):
            continue
        balance = balances.get(account_id_of(account))
        if balance is not None:
            set_committed_value(account, "balance", balance.balance)
            set_committed_value(account, "held", balance.held)


def _sync_posted(accounts: list, ids: list[int], balances: dict[int, Balance]) -> None:
    """``sync_accounts`` for ``_post``, which already knows each account's id.

    An object with no pending change and nothing expired (the usual case: an
    account loaded in this transaction, or held detached by a long-lived
    caller) takes the two values straight into its ``__dict__``, which is
    what ``set_committed_value`` would leave; any other goes through it.
    """
    for account, account_id in zip(accounts, ids, strict=True):
        if isinstance(account, int):
            continue
        balance = balances[account_id]
        state = instance_state(account)
        if state.committed_state or state.expired_attributes or state.callables:
            set_committed_value(account, "balance", balance.balance)
            set_committed_value(account, "held", balance.held)
        else:
            values = state.dict
            values["balance"] = balance.balance
            values["held"] = balance.held


class _MinorUnits(Money):
    """The available balance as the API has always said it (bare minor units); pages show it as money."""

    def english(self) -> str:
        return str(self.amount)


def _insufficient(exc: Overdrawn, currency: str | None = None) -> InsufficientFunds:
    available = _MinorUnits(exc.available, currency) if currency else exc.available
    return InsufficientFunds(errors={"amount": [Msg(N_("available balance is %(available)s"), available=available)]})


# ---------------------------------------------------------------- posting


def _entry_by_key(key: str) -> JournalEntry | None:
    return db.session.execute(select(JournalEntry).where(JournalEntry.idempotency_key == key)).scalar_one_or_none()


@functools.cache
def _pg_write_sql(postings: int, accounts: int) -> str:
    """Insert an entry and its postings and store the balances in one statement (PostgreSQL).

    Parameters: the entry's six values, then (account id, currency, amount,
    balance after) per posting, then (account id, balance) per account. If the
    idempotency key is taken, the entry CTE is empty and nothing is written.
    """
    posting_rows = ", ".join(f"(%s::bigint, %s::varchar, %s::bigint, %s::bigint, {n})" for n in range(postings))
    balance_rows = ", ".join(["(%s::bigint, %s::bigint)"] * accounts)
    return f"""
    WITH entry AS (
        INSERT INTO journal_entries (kind, memo, idempotency_key, actor_id, reverses_id, created_at)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id
    ), posted AS (
        INSERT INTO postings (entry_id, account_id, currency, amount, balance_after)
        SELECT entry.id, p.account_id, p.currency, p.amount, p.balance_after
        FROM entry, (VALUES {posting_rows}) AS p(account_id, currency, amount, balance_after, n)
        ORDER BY p.n
    ), moved AS (
        UPDATE accounts SET balance = b.balance
        FROM entry, (VALUES {balance_rows}) AS b(id, balance)
        WHERE accounts.id = b.id
    )
    SELECT id FROM entry
    """


def _write_entry(
    connection, values: dict, pairs: list[tuple[int, int]], after: list[int], balances: dict[int, Balance]
) -> int | None:
    """Insert the entry and its postings, store the new balances; return the entry id.

    Returns None, writing nothing, if the entry's idempotency key is taken.
    On PostgreSQL this is one statement (one round trip); elsewhere three.
    """
    if connection.dialect.name == "postgresql":
        params = [values[name] for name in _ENTRY_COLUMNS]
        for (account_id, amount), balance_after in zip(pairs, after, strict=True):
            params += (account_id, balances[account_id].currency, amount, balance_after)
        for account_id, balance in balances.items():
            params += (account_id, balance.balance)
        rows = _pg_fetch(connection, _pg_write_sql(len(pairs), len(balances)), params, "ledger.write")
        return rows[0][0] if rows else None
    if values["idempotency_key"] is None:
        entry_id = connection.execute(_INSERT_ENTRY, values).scalar_one()
    else:
        statement = _dialect_insert(entries_table)
        if statement is None:  # pragma: no cover - other backends
            entry_id = connection.execute(_INSERT_ENTRY, values).scalar_one()
        else:
            statement = statement.on_conflict_do_nothing(index_elements=["idempotency_key"])
            entry_id = connection.execute(statement.returning(entries_table.c.id), values).scalar_one_or_none()
            if entry_id is None:
                return None
    connection.execute(
        _INSERT_POSTINGS,
        [
            {
                "entry_id": entry_id,
                "account_id": account_id,
                "currency": balances[account_id].currency,
                "amount": amount,
                "balance_after": balance_after,
            }
            for (account_id, amount), balance_after in zip(pairs, after, strict=True)
        ],
    )
    write_balances(balances)
    return entry_id


def _entry_values(kind: str, memo: str, idempotency_key: str | None, actor_id, reverses_id) -> dict:
    return dict(
        kind=kind,
        memo=memo[:500],
        idempotency_key=idempotency_key,
        actor_id=actor_id,
        reverses_id=reverses_id,
        created_at=now(),
    )


def _post(
    kind: str,
    accounts: list,
    amounts: list[int],
    *,
    normal_direction: bool,
    memo: str,
    idempotency_key: str | None,
    actor_id: int | None,
    reverses_id: int | None,
) -> JournalEntry:
    """Lock, check, write: the one path by which balances change.

    ``amounts`` are signed postings (> 0 debit), or with ``normal_direction``
    changes in each account's normal direction (> 0 raises its balance).
    """
    with transaction():
        session = db.session()
        session.flush()
        ids = [account_id_of(account) for account in accounts]
        connection = session.connection()
        balances = _lock_balances(connection, ids)
        if idempotency_key is not None:
            # Checked under the locks: a command with the same key that we waited for is seen here,
            # before its effect on the balances could make this one look like an overdraft.
            existing = _entry_by_key(idempotency_key)
            if existing is not None:
                return existing
        if normal_direction:
            amounts = [normal_delta(balances[i].normal_side, amount) for i, amount in zip(ids, amounts, strict=True)]
        pairs = list(zip(ids, amounts, strict=True))
        try:
            check_balanced(entry_lines(balances, pairs))
        except UnbalancedEntry as exc:
            raise LedgerInvariantError(str(exc)) from exc
        try:
            after = apply_entry(balances, pairs)
        except Overdrawn as exc:
            raise _insufficient(exc, balances[exc.account_id].currency) from None
        values = _entry_values(kind, memo, idempotency_key, actor_id, reverses_id)
        entry_id = _write_entry(connection, values, pairs, after, balances)
        if entry_id is None:  # the same key, committed meanwhile by a command on other accounts
            return _entry_by_key(idempotency_key)
        _sync_posted(accounts, ids, balances)
        return attach_loaded(JournalEntry, {**values, "id": entry_id})  # as a loaded row: no SELECT


def post_entry(
    kind: str,
    postings: list[tuple[Account, int]],
    *,
    memo: str = "",
    idempotency_key: str | None = None,
    actor_id: int | None = None,
    reverses_id: int | None = None,
) -> JournalEntry:
    """Post one balanced journal entry; the only function that moves balances.

    ``postings`` are ``(account, signed amount)`` pairs, > 0 debit. With an
    ``idempotency_key`` already used, the first entry is returned and nothing
    is posted. Raises ``InsufficientFunds`` if a wallet's available balance
    would go below zero, ``LedgerInvariantError`` if the postings do not
    balance; either way nothing is written.
    """
    return _post(
        kind,
        [account for account, _ in postings],
        [amount for _, amount in postings],
        normal_direction=False,
        memo=memo,
        idempotency_key=idempotency_key,
        actor_id=actor_id,
        reverses_id=reverses_id,
    )


def transfer(
    kind: str,
    source: Account,
    destination: Account,
    amount: int,
    *,
    memo: str = "",
    idempotency_key: str | None = None,
    actor_id: int | None = None,
    reverses_id: int | None = None,
) -> JournalEntry:
    """Move ``amount`` from ``source`` (its balance goes down) to ``destination`` (up).

    Both accounts must have the same normal side (two wallets, a wallet and
    an escrow, ...); otherwise the postings cannot balance.
    """
    return _post(
        kind,
        [source, destination],
        [-amount, amount],
        normal_direction=True,
        memo=memo,
        idempotency_key=idempotency_key,
        actor_id=actor_id,
        reverses_id=reverses_id,
    )


def reverse_entry(entry_id: int, *, actor_id: int | None = None, memo: str = "") -> JournalEntry:
    """Post the mirror image of an entry. An entry can be reversed once."""
    with transaction():
        entry = db.session.execute(
            select(JournalEntry).where(JournalEntry.id == entry_id).with_for_update(key_share=True),
            execution_options={"populate_existing": True},
        ).scalar_one_or_none()
        if entry is None:
            raise NotFound(f"No journal entry {entry_id}.")
        if entry.reverses_id is not None:
            raise InvalidState("A reversal cannot itself be reversed; post a new entry instead.")
        already = db.session.execute(
            select(JournalEntry.id).where(JournalEntry.reverses_id == entry_id)
        ).scalar_one_or_none()
        if already is not None:
            raise InvalidState(f"Entry {entry_id} was already reversed by entry {already}.")
        postings = [(p.account, -p.amount) for p in entry.postings]
        return post_entry(
            "reversal",
            postings,
            memo=memo or f"Reversal of entry {entry_id}",
            actor_id=actor_id,
            reverses_id=entry_id,
        )


# ---------------------------------------------------------------- holds


def _set_held(account_id: int, held: int) -> None:
    db.session.connection().execute(_SET_HELD, {"_id": account_id, "_held": held})


# PostgreSQL: take the hold in one statement. The UPDATE locks the wallet's row as ``lock_balances`` does
# (FOR NO KEY UPDATE) and re-checks the available balance on the row's latest version; no row back
# means not enough available (or no such account), and nothing was written.
_PG_PLACE_HOLD = """
WITH account AS (
    UPDATE accounts SET held = held + %(amount)s
    WHERE id = %(account_id)s AND balance - held >= %(amount)s
    RETURNING id, balance, held
), hold AS (
    INSERT INTO holds (account_id, amount, captured, status, reference, created_at)
    SELECT id, %(amount)s, 0, 'held', %(reference)s::varchar, %(created_at)s::timestamptz FROM account
    RETURNING id
)
SELECT hold.id, account.balance, account.held FROM hold, account
"""


def _pg_place_hold(connection, account, account_id: int, amount: int, reference: str) -> Hold | None:
    """``place_hold``'s PostgreSQL fast path: the Hold, or None (changing nothing) if not enough is available."""
    created_at = now()
    params = {"amount": amount, "account_id": account_id, "reference": reference, "created_at": created_at}
    rows = _pg_fetch(connection, _PG_PLACE_HOLD, params, "ledger.hold")
    if not rows:
        return None
    hold_id, balance, held = rows[0]
    if not isinstance(account, int):
        set_committed_value(account, "balance", balance)
        set_committed_value(account, "held", held)
    values = {
        "id": hold_id,
        "account_id": account_id,
        "amount": amount,
        "captured": 0,
        "status": "held",
        "reference": reference,
        "created_at": created_at,
        "resolved_at": None,
        "capture_entry_id": None,
    }
    return attach_loaded(Hold, values)


def place_hold(account: Account, amount: int, *, reference: str = "") -> Hold:
    """Set ``amount`` of a wallet aside. Raises InsufficientFunds if not available."""
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise LedgerInvariantError("a hold must be a positive int")
    with transaction() as session:
        session.flush()
        account_id = account_id_of(account)
        reference = reference[:80]
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            hold = _pg_place_hold(connection, account, account_id, amount, reference)
            if hold is not None:
                return hold
        balances = lock_balances([account_id])  # not enough available (or no such account): say which
        balance = balances[account_id]
        if balance.available < amount:
            raise _insufficient(Overdrawn(account_id, balance.available), balance.currency)
        balance.held += amount
        _set_held(account_id, balance.held)
        sync_accounts([account], balances)
        hold = Hold(
            account_id=account_id,
            amount=amount,
            captured=0,
            status="held",
            reference=reference[:80],
            created_at=now(),
        )
        session.add(hold)
        session.flush()
    return hold


def _lock_hold(hold_id: int, *other_accounts: int) -> tuple[Hold, dict[int, Balance]]:
    """Lock the hold's wallet (and ``other_accounts``), then the hold; it must still be held.

    Accounts are always locked before holds, in ascending id order, whoever
    locks them (a pool settling many holds locks all its accounts first), so
    resolving holds side by side cannot deadlock.
    """
    account_id = db.session.execute(select(Hold.account_id).where(Hold.id == hold_id)).scalar_one_or_none()
    if account_id is None:
        raise NotFound(f"No hold {hold_id}.")
    balances = lock_balances([account_id, *other_accounts])
    hold = db.session.execute(
        select(Hold).where(Hold.id == hold_id).with_for_update(of=Hold, key_share=True),
        execution_options={"populate_existing": True},
    ).scalar_one()
    if hold.status != "held":
        raise InvalidState(f"Hold {hold_id} is already {hold.status}.")
    return hold, balances


def _unhold(hold: Hold, balances: dict[int, Balance]) -> None:
    balance = balances[hold.account_id]
    balance.held -= hold.amount
    _set_held(hold.account_id, balance.held)
    sync_accounts([hold.account], balances)


def release_hold(hold_id: int) -> Hold:
    """Give the whole hold back to the wallet's available balance."""
    with transaction() as session:
        hold, balances = _lock_hold(hold_id)
        _unhold(hold, balances)
        hold.status = "released"
        hold.resolved_at = now()
        session.flush()
    return hold


def capture_hold(
    hold_id: int,
    amount: int,
    destination: Account,
    *,
    kind: str,
    memo: str = "",
    actor_id: int | None = None,
) -> Hold:
    """Capture ``amount`` (0 < amount <= hold) into ``destination``; release the rest."""
    with transaction() as session:
        hold, balances = _lock_hold(hold_id, account_id_of(destination))
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0 or amount > hold.amount:
            raise LedgerInvariantError(f"capture of {amount} outside hold of {hold.amount}")
        _unhold(hold, balances)
        entry = transfer(kind, hold.account, destination, amount, memo=memo, actor_id=actor_id)
        hold.status = "captured"
        hold.captured = amount
        hold.capture_entry_id = entry.id
        hold.resolved_at = now()
        session.flush()
    return hold
