"""The ledger under real concurrency, and the database's own guards (PostgreSQL only).

The threads each run in their own app context (own session, own connection),
start together at a barrier, and remove their session at the end; the row
locks taken in ascending id order decide who goes first and rule out
deadlocks. The raw-SQL tests go around the services on a separate
connection to show that PostgreSQL itself refuses what the ledger forbids.
"""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from marketplace.db import transaction
from marketplace.errors import InsufficientFunds, InvalidState
from marketplace.extensions import db
from marketplace.ledger import services as ledger
from marketplace.ledger.models import Account, IdempotencyRecord, JournalEntry
from marketplace.payments.models import Payment
from tests.helpers import make_member, token_for, wallet_of

pytestmark = pytest.mark.postgres


def in_threads(app, count: int, work) -> list:
    """Run ``work(index)`` in ``count`` threads released together; return ("ok", value) or ("error", exc)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                results[index] = ("ok", work(index))
            except Exception as exc:  # noqa: BLE001 - handed to the test
                results[index] = ("error", exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
        assert not thread.is_alive(), "a thread hung (deadlock?)"
    return results


def wallet_id(member_id: int) -> int:
    with transaction():
        return ledger.wallet_account(member_id, "EUR").id


def entry_count() -> int:
    return db.session.execute(select(func.count(JournalEntry.id))).scalar_one()


# ---------------------------------------------------------------- concurrency


def test_opposite_transfers_at_once_end_where_they_started_without_deadlock(app):
    alice, bob = make_member(funds={"EUR": 10_000}).id, make_member(funds={"EUR": 10_000}).id
    a, b = wallet_id(alice), wallet_id(bob)
    entries_before = entry_count()
    db.session.remove()
    threads, per_direction = 16, 500
    jobs = [(a, b)] * per_direction + [(b, a)] * per_direction
    jobs = jobs[::2] + jobs[1::2]  # interleave the directions

    def work(index: int) -> int:
        done = 0
        for source_id, destination_id in jobs[index::threads]:
            with transaction():
                source, destination = db.session.get(Account, source_id), db.session.get(Account, destination_id)
                ledger.transfer("ping-pong", source, destination, 7)
            done += 1
        return done

    results = in_threads(app, threads, work)
    assert [kind for kind, _ in results] == ["ok"] * threads, [v for k, v in results if k == "error"][:3]
    assert sum(value for _, value in results) == 2 * per_direction
    assert wallet_of(alice)["balance"] == 10_000
    assert wallet_of(bob)["balance"] == 10_000
    assert entry_count() == entries_before + 2 * per_direction


def test_twenty_debits_racing_for_seven_debits_worth_exactly_seven_win(app):
    spender, shop = make_member(funds={"EUR": 700}).id, make_member().id
    source_id, destination_id = wallet_id(spender), wallet_id(shop)
    db.session.remove()

    def work(index: int) -> int:
        with transaction():
            source, destination = db.session.get(Account, source_id), db.session.get(Account, destination_id)
            return ledger.transfer("purchase", source, destination, 100, memo=f"debit {index}").id

    results = in_threads(app, 20, work)
    wins = [value for kind, value in results if kind == "ok"]
    losses = [value for kind, value in results if kind == "error"]
    assert len(wins) == 7 and len(set(wins)) == 7
    assert len(losses) == 13 and all(isinstance(e, InsufficientFunds) for e in losses), losses
    assert wallet_of(spender) == {"currency": "EUR", "balance": 0, "held": 0, "available": 0}
    assert wallet_of(shop)["balance"] == 700


def test_same_idempotency_key_from_eight_threads_through_the_api_has_one_effect(app):
    member = make_member()
    token, member_id = token_for(member), member.id
    db.session.remove()
    body = json.dumps({"amount": 1_234, "currency": "EUR"})
    headers = {
        "Authorization": f"Bearer {token}",
        "Idempotency-Key": "race-1",
        "Accept": "application/json",
    }

    def work(index: int):
        response = app.test_client().post(
            "/api/v1/wallet/deposits", data=body, content_type="application/json", headers=headers
        )
        return response.status_code, response.get_json()

    results = in_threads(app, 8, work)
    assert [kind for kind, _ in results] == ["ok"] * 8, results
    statuses = {status for _, (status, _) in results}
    bodies = [payload for _, (_, payload) in results]
    assert statuses == {201}, results
    assert all(payload == bodies[0] for payload in bodies)
    assert bodies[0]["amount"] == 1_234
    assert wallet_of(member_id)["balance"] == 1_234
    assert db.session.execute(select(func.count(Payment.id)).where(Payment.member_id == member_id)).scalar_one() == 1
    assert db.session.execute(select(func.count(IdempotencyRecord.id))).scalar_one() == 1
    deposits = db.session.execute(
        select(func.count(JournalEntry.id)).where(JournalEntry.kind == "deposit", JournalEntry.actor_id == member_id)
    ).scalar_one()
    assert deposits == 1


def test_same_idempotency_key_from_eight_threads_through_the_service_posts_once(app):
    member = make_member(funds={"EUR": 100}).id
    wallet, cash = wallet_id(member), ledger.external_account("sandbox", "EUR").id
    db.session.commit()
    entries_before = entry_count()
    db.session.remove()

    def work(index: int) -> int:
        # Each would overdraw once the first has run: the key must be seen before the funds are checked.
        with transaction():
            source, destination = db.session.get(Account, wallet), db.session.get(Account, cash)
            return ledger.post_entry("withdrawal", [(source, 100), (destination, -100)], idempotency_key="drain-1").id

    results = in_threads(app, 8, work)
    assert [kind for kind, _ in results] == ["ok"] * 8, results
    assert len({entry_id for _, entry_id in results}) == 1
    assert entry_count() == entries_before + 1
    assert wallet_of(member)["balance"] == 0


def test_one_entry_reversed_by_eight_threads_at_once_is_reversed_once(app):
    alice, bob = make_member(funds={"EUR": 1_000}).id, make_member().id
    with transaction():
        entry_id = ledger.transfer(
            "gift", ledger.wallet_account(alice, "EUR"), ledger.wallet_account(bob, "EUR"), 400
        ).id
    db.session.remove()

    results = in_threads(app, 8, lambda index: ledger.reverse_entry(entry_id).id)
    assert len([v for kind, v in results if kind == "ok"]) == 1, results
    losses = [v for kind, v in results if kind == "error"]
    assert len(losses) == 7 and all(isinstance(e, InvalidState) for e in losses), losses
    assert wallet_of(alice)["balance"] == 1_000
    assert wallet_of(bob)["balance"] == 0


def test_one_hold_resolved_by_eight_threads_at_once_resolves_once(app):
    payer, payee = make_member(funds={"EUR": 1_000}).id, make_member().id
    with transaction():
        hold_id = ledger.place_hold(ledger.wallet_account(payer, "EUR"), 600).id
        destination = ledger.wallet_account(payee, "EUR").id
    db.session.remove()

    def work(index: int) -> str:
        if index % 2:
            return ledger.release_hold(hold_id).status
        return ledger.capture_hold(hold_id, 250, db.session.get(Account, destination), kind="pledge").status

    results = in_threads(app, 8, work)
    wins = [v for kind, v in results if kind == "ok"]
    losses = [v for kind, v in results if kind == "error"]
    assert len(wins) == 1 and len(losses) == 7, results
    assert all(isinstance(e, InvalidState) for e in losses), losses
    payer_wallet = wallet_of(payer)
    if wins == ["captured"]:
        assert (payer_wallet["balance"], payer_wallet["held"], wallet_of(payee)["balance"]) == (750, 0, 250)
    else:
        assert (payer_wallet["balance"], payer_wallet["held"], wallet_of(payee)["balance"]) == (1_000, 0, 0)


def test_holds_and_debits_racing_for_the_same_money_never_overspend(app):
    spender, shop = make_member(funds={"EUR": 500}).id, make_member().id
    source_id, destination_id = wallet_id(spender), wallet_id(shop)
    db.session.remove()

    def work(index: int) -> str:
        with transaction():
            source = db.session.get(Account, source_id)
            if index % 2:
                ledger.place_hold(source, 100)
                return "hold"
            ledger.transfer("purchase", source, db.session.get(Account, destination_id), 100)
            return "debit"

    results = in_threads(app, 10, work)
    wins = [v for kind, v in results if kind == "ok"]
    losses = [v for kind, v in results if kind == "error"]
    assert len(wins) == 5 and len(losses) == 5, results
    assert all(isinstance(e, InsufficientFunds) for e in losses), losses
    wallet = wallet_of(spender)
    assert wallet["available"] == 0
    assert wallet["held"] == 100 * wins.count("hold")
    assert wallet["balance"] == 500 - 100 * wins.count("debit")


# ---------------------------------------------------------------- the database's own guards


@pytest.fixture
def raw(app):
    """A connection of its own, outside the ledger services; rolled back after each failure."""
    with db.engine.connect() as conn:
        yield conn


@pytest.fixture
def funded():
    """(wallet id, cash account id, the deposit's entry id, its idempotency key)."""
    member = make_member(funds={"EUR": 1_000})
    entry = db.session.execute(
        select(JournalEntry).where(JournalEntry.kind == "deposit", JournalEntry.actor_id == member.id)
    ).scalar_one()
    with transaction():
        wallet = ledger.wallet_account(member.id, "EUR")
        cash = ledger.external_account("sandbox", "EUR")
    ids = wallet.id, cash.id, entry.id, entry.idempotency_key
    db.session.remove()
    return ids


def new_entry(conn, key: str | None = None) -> int:
    return conn.execute(
        text(
            "INSERT INTO journal_entries (created_at, kind, memo, idempotency_key) "
            "VALUES (now(), 'raw', '', :key) RETURNING id"
        ),
        {"key": key},
    ).scalar_one()


def add_posting(conn, entry_id: int, account_id: int, amount: int, currency: str = "EUR") -> None:
    conn.execute(
        text(
            "INSERT INTO postings (entry_id, account_id, currency, amount, balance_after) "
            "VALUES (:entry, :account, :currency, :amount, 0)"
        ),
        {"entry": entry_id, "account": account_id, "currency": currency, "amount": amount},
    )


@pytest.mark.parametrize(
    ("postings", "message"),
    [
        ([], "has 0 posting"),
        ([5], "has 1 posting"),
        ([5, -4], "unbalanced"),
        ([5, 5, -9], "unbalanced"),
    ],
)
def test_an_unbalanced_entry_fails_at_commit(raw, funded, postings, message):
    wallet, _, _, _ = funded
    entries_before = entry_count()
    entry_id = new_entry(raw)
    for amount in postings:
        add_posting(raw, entry_id, wallet, amount)  # each statement is accepted...
    with pytest.raises(IntegrityError, match=message):
        raw.commit()  # ...the deferred trigger refuses the entry at COMMIT
    raw.rollback()
    assert entry_count() == entries_before


def test_an_entry_must_balance_per_currency(raw, funded):
    wallet, _, _, _ = funded
    member = make_member(funds={"GBP": 100})
    with transaction():
        pounds = ledger.wallet_account(member.id, "GBP").id
    entry_id = new_entry(raw)
    add_posting(raw, entry_id, wallet, 5, "EUR")
    add_posting(raw, entry_id, pounds, -5, "GBP")
    with pytest.raises(IntegrityError, match="unbalanced"):
        raw.commit()


def test_a_posting_added_later_to_a_balanced_entry_fails_at_commit(raw, funded):
    wallet, _, entry_id, _ = funded
    add_posting(raw, entry_id, wallet, 1)
    with pytest.raises(IntegrityError, match="unbalanced"):
        raw.commit()


def test_a_balanced_raw_entry_is_accepted(raw, funded):
    """The trigger refuses what is wrong, not everything: +5/-5 on one account commits."""
    wallet, _, _, _ = funded
    entry_id = new_entry(raw)
    add_posting(raw, entry_id, wallet, 5)
    add_posting(raw, entry_id, wallet, -5)
    raw.commit()
    stored = raw.execute(text("SELECT amount FROM postings WHERE entry_id = :e ORDER BY id"), {"e": entry_id})
    assert stored.scalars().all() == [5, -5]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE postings SET amount = amount + 1 WHERE entry_id = :entry",
        "UPDATE postings SET balance_after = 0 WHERE entry_id = :entry",
        "DELETE FROM postings WHERE entry_id = :entry",
        "UPDATE journal_entries SET memo = 'edited' WHERE id = :entry",
        "DELETE FROM journal_entries WHERE id = :entry",
    ],
)
def test_postings_and_entries_cannot_be_changed_or_deleted(raw, funded, statement):
    _, _, entry_id, _ = funded
    with pytest.raises(IntegrityError, match="immutable"):
        raw.execute(text(statement), {"entry": entry_id})
    raw.rollback()


def test_an_idempotency_key_can_be_used_once(raw, funded):
    _, _, _, key = funded
    assert key
    with pytest.raises(IntegrityError, match="idempotency_key"):
        new_entry(raw, key)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE accounts SET balance = -1 WHERE id = :wallet",
        "UPDATE accounts SET held = balance + 1 WHERE id = :wallet",
        "UPDATE accounts SET held = -1 WHERE id = :wallet",
    ],
)
def test_a_wallet_cannot_be_made_negative_behind_the_ledgers_back(raw, funded, statement):
    wallet, _, _, _ = funded
    with pytest.raises(IntegrityError, match="ck_accounts"):
        raw.execute(text(statement), {"wallet": wallet})
    raw.rollback()
    assert wallet_of(db.session.get(Account, wallet).member_id)["available"] == 1_000
