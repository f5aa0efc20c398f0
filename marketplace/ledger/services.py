"""The ledger's service layer: the only code that writes balances.

``post_entry`` posts a balanced journal entry; ``place_hold``,
``capture_hold`` and ``release_hold`` run two-phase holds; ``reverse_entry``
undoes an entry with its mirror image. Balance rows are locked with
``SELECT ... FOR UPDATE`` in ascending id order, so concurrent transfers never
deadlock, and every check runs on the locked, fresh values.
"""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from ..clock import now
from ..db import transaction
from ..errors import InsufficientFunds, InvalidState, LedgerInvariantError, NotFound
from ..extensions import db
from .models import Account, Hold, JournalEntry, Posting
from .rules import Line, UnbalancedEntry, check_balanced, normal_delta

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
    "loan": "debit",  # principal a lender's part is owed
}


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
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        db.session.execute(pg_insert(Account).values(**values).on_conflict_do_nothing(index_elements=["code"]))
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        db.session.execute(sqlite_insert(Account).values(**values).on_conflict_do_nothing(index_elements=["code"]))
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


def lock_accounts(account_ids) -> dict[int, Account]:
    """Lock the rows in ascending id order and return them fresh."""
    ids = sorted(set(account_ids))
    rows = (
        db.session.execute(
            select(Account).where(Account.id.in_(ids)).order_by(Account.id).with_for_update(),
            execution_options={"populate_existing": True},
        )
        .scalars()
        .all()
    )
    if len(rows) != len(ids):
        raise LedgerInvariantError("posting to an account that does not exist")
    return {a.id: a for a in rows}


# ---------------------------------------------------------------- posting


def _entry_by_key(key: str) -> JournalEntry | None:
    return db.session.execute(select(JournalEntry).where(JournalEntry.idempotency_key == key)).scalar_one_or_none()


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
    would go below zero.
    """
    if idempotency_key is not None:
        existing = _entry_by_key(idempotency_key)
        if existing is not None:
            return existing
    lines = [Line(account.code, account.currency, amount) for account, amount in postings]
    try:
        check_balanced(lines)
    except UnbalancedEntry as exc:
        raise LedgerInvariantError(str(exc)) from exc
    with transaction():
        locked = lock_accounts(account.id for account, _ in postings)
        deltas: dict[int, int] = {}
        for account, amount in postings:
            deltas[account.id] = deltas.get(account.id, 0) + normal_delta(locked[account.id].normal_side, amount)
        for account_id, delta in deltas.items():
            account = locked[account_id]
            if account.kind == "wallet" and delta < 0 and account.balance + delta - account.held < 0:
                raise InsufficientFunds(
                    errors={"amount": [f"available balance is {account.balance - account.held}"]}
                )
        entry = JournalEntry(
            kind=kind,
            memo=memo[:500],
            idempotency_key=idempotency_key,
            actor_id=actor_id,
            reverses_id=reverses_id,
            created_at=now(),
        )
        db.session.add(entry)
        db.session.flush()
        running = {account_id: locked[account_id].balance for account_id in deltas}
        rows = []
        for account, amount in postings:
            running[account.id] += normal_delta(locked[account.id].normal_side, amount)
            rows.append(
                dict(
                    entry_id=entry.id,
                    account_id=account.id,
                    currency=account.currency,
                    amount=amount,
                    balance_after=running[account.id],
                )
            )
        db.session.execute(insert(Posting), rows)
        for account_id, delta in deltas.items():
            locked[account_id].balance += delta
        db.session.flush()
    return entry


def transfer(
    kind: str,
    source: Account,
    destination: Account,
    amount: int,
    **kwargs,
) -> JournalEntry:
    """Move ``amount`` from ``source`` to ``destination`` (both credit-normal or mixed).

    The source is the account whose balance goes down: for a credit-normal
    source that is a debit posting.
    """
    return post_entry(
        kind,
        [(source, source.sign * -amount), (destination, destination.sign * amount)],
        **kwargs,
    )


def reverse_entry(entry_id: int, *, actor_id: int | None = None, memo: str = "") -> JournalEntry:
    """Post the mirror image of an entry. An entry can be reversed once."""
    with transaction():
        entry = db.session.get(JournalEntry, entry_id)
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


def place_hold(account: Account, amount: int, *, reference: str = "") -> Hold:
    """Set ``amount`` of a wallet aside. Raises InsufficientFunds if not available."""
    if amount <= 0:
        raise LedgerInvariantError("a hold must be positive")
    with transaction():
        locked = lock_accounts([account.id])[account.id]
        if locked.balance - locked.held < amount:
            raise InsufficientFunds(errors={"amount": [f"available balance is {locked.balance - locked.held}"]})
        locked.held += amount
        hold = Hold(account_id=locked.id, amount=amount, reference=reference[:80], created_at=now())
        db.session.add(hold)
        db.session.flush()
    return hold


def _lock_hold(hold_id: int) -> Hold:
    hold = db.session.execute(
        select(Hold).where(Hold.id == hold_id).with_for_update(of=Hold),
        execution_options={"populate_existing": True},
    ).scalar_one_or_none()
    if hold is None:
        raise NotFound(f"No hold {hold_id}.")
    if hold.status != "held":
        raise InvalidState(f"Hold {hold_id} is already {hold.status}.")
    return hold


def _unhold(hold: Hold) -> None:
    db.session.execute(update(Account).where(Account.id == hold.account_id).values(held=Account.held - hold.amount))


def release_hold(hold_id: int) -> Hold:
    """Give the whole hold back to the wallet's available balance."""
    with transaction():
        hold = _lock_hold(hold_id)
        lock_accounts([hold.account_id])
        _unhold(hold)
        hold.status = "released"
        hold.resolved_at = now()
        db.session.flush()
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
    with transaction():
        hold = _lock_hold(hold_id)
        if amount <= 0 or amount > hold.amount:
            raise LedgerInvariantError(f"capture of {amount} outside hold of {hold.amount}")
        lock_accounts([hold.account_id, destination.id])
        _unhold(hold)
        db.session.expire(hold.account)
        entry = transfer(kind, hold.account, destination, amount, memo=memo, actor_id=actor_id)
        hold.status = "captured"
        hold.captured = amount
        hold.capture_entry_id = entry.id
        hold.resolved_at = now()
        db.session.flush()
    return hold
