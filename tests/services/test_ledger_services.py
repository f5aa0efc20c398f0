"""The ledger's services against the real database: transfers, holds, reversals,
idempotency, batches, and that a failure anywhere leaves nothing written.

The suite's harness checks the global invariants after every test (each entry
balanced, every cached balance equal to its postings, no negative available).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from marketplace.db import transaction
from marketplace.errors import InsufficientFunds, InvalidState, LedgerInvariantError, NotFound
from marketplace.extensions import db
from marketplace.ledger import services as ledger
from marketplace.ledger.batch import NewEntry, post_entries
from marketplace.ledger.models import Account, Hold, JournalEntry, Posting
from tests.helpers import make_member, wallet_of


def counts() -> tuple[int, int, int]:
    """(journal entries, postings, holds) in the database."""
    return tuple(
        db.session.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (JournalEntry, Posting, Hold)
    )


def stored(account_id: int) -> tuple[int, int]:
    """(balance, held) as stored, not as any session object remembers it."""
    row = db.session.execute(select(Account.balance, Account.held).where(Account.id == account_id)).one()
    return row.balance, row.held


def funded_wallet(amount: int) -> Account:
    member = make_member(funds={"EUR": amount} if amount else None)
    with transaction():
        return ledger.wallet_account(member.id, "EUR")


def external() -> Account:
    with transaction():
        return ledger.external_account("sandbox", "EUR")


# ---------------------------------------------------------------- accounts


def test_ensure_account_creates_once_with_the_kinds_normal_side():
    member = make_member()
    first = ledger.wallet_account(member.id, "EUR")
    second = ledger.wallet_account(member.id, "EUR")
    assert first.id == second.id
    assert (first.code, first.kind, first.normal_side, first.balance, first.held) == (
        f"member:{member.id}:wallet:EUR",
        "wallet",
        "credit",
        0,
        0,
    )
    assert ledger.external_account("sandbox", "GBP").normal_side == "debit"
    assert ledger.fees_account("EUR").code == "platform:fees:EUR"
    assert ledger.find_account(first.code).id == first.id
    with pytest.raises(NotFound):
        ledger.find_account("member:0:wallet:XXX")


# ---------------------------------------------------------------- posting


def test_transfer_moves_money_between_wallets_and_records_balance_after():
    alice, bob = funded_wallet(1_000), funded_wallet(200)
    entry = ledger.transfer("gift", alice, bob, 300, memo="birthday", actor_id=alice.member_id)
    db.session.commit()
    assert stored(alice.id) == (700, 0)
    assert stored(bob.id) == (500, 0)
    entry = db.session.get(JournalEntry, entry.id)
    assert (entry.kind, entry.memo, entry.actor_id, entry.reverses_id) == ("gift", "birthday", alice.member_id, None)
    assert [(p.account_id, p.amount, p.balance_after) for p in entry.postings] == [
        (alice.id, 300, 700),  # a debit lowers a credit-normal wallet
        (bob.id, -300, 500),
    ]


def test_post_entry_moves_cash_and_wallet_together_on_deposit_and_withdrawal():
    wallet, cash = funded_wallet(0), external()
    cash_before = cash.balance
    ledger.post_entry("deposit", [(cash, 2_500), (wallet, -2_500)])
    assert stored(wallet.id) == (2_500, 0)
    assert stored(cash.id) == (cash_before + 2_500, 0)
    ledger.post_entry("withdrawal", [(wallet, 1_000), (cash, -1_000)])
    assert stored(wallet.id) == (1_500, 0)
    assert stored(cash.id) == (cash_before + 1_500, 0)


def test_entry_with_three_postings_and_a_fee():
    buyer, seller, fees = funded_wallet(10_000), funded_wallet(0), ledger.fees_account("EUR")
    entry = ledger.post_entry("sale", [(buyer, 10_000), (seller, -9_900), (fees, -100)])
    assert stored(buyer.id) == (0, 0)
    assert stored(seller.id) == (9_900, 0)
    assert stored(fees.id) == (100, 0)
    assert len(entry.postings) == 3


def test_session_objects_show_the_new_balances_without_a_reload():
    alice, bob = funded_wallet(1_000), funded_wallet(0)
    with transaction():
        ledger.transfer("gift", alice, bob, 400)
        assert (alice.balance, alice.held, alice.available) == (600, 0, 600)
        assert bob.balance == 400
        ledger.place_hold(alice, 100)
        assert (alice.balance, alice.held, alice.available) == (600, 100, 500)


def test_same_idempotency_key_returns_the_first_entry_and_posts_nothing():
    alice, bob = funded_wallet(1_000), funded_wallet(0)
    first = ledger.transfer("gift", alice, bob, 100, idempotency_key="gift-1")
    before = counts()
    again = ledger.transfer("gift", alice, bob, 100, idempotency_key="gift-1")
    different = ledger.post_entry("gift", [(alice, 999), (bob, -999)], idempotency_key="gift-1")
    assert again.id == first.id == different.id
    assert counts() == before
    assert stored(alice.id) == (900, 0)
    assert stored(bob.id) == (100, 0)


def test_overdraft_raises_insufficient_funds_and_writes_nothing():
    alice, bob = funded_wallet(500), funded_wallet(0)
    ledger.place_hold(alice, 200)
    before = counts()
    with pytest.raises(InsufficientFunds) as caught:
        ledger.transfer("gift", alice, bob, 301)  # 500 - 200 held = 300 available
    assert caught.value.errors == {"amount": ["available balance is 300"]}
    assert counts() == before
    assert stored(alice.id) == (500, 200)
    assert stored(bob.id) == (0, 0)
    ledger.transfer("gift", alice, bob, 300)  # exactly the available amount is fine
    assert stored(alice.id) == (200, 200)


@pytest.mark.parametrize(
    "amounts",
    [
        [500],  # one posting
        [500, -499],  # does not sum to zero
        [500, -500, 0],  # a zero posting
        [5.0, -5.0],  # not ints
    ],
)
def test_unbalanced_postings_raise_and_write_nothing(amounts):
    wallet, cash = funded_wallet(1_000), external()
    accounts = [cash, wallet, cash]
    before, wallet_before, cash_before = counts(), stored(wallet.id), stored(cash.id)
    with pytest.raises(LedgerInvariantError):
        ledger.post_entry("bad", list(zip(accounts, amounts, strict=False)))
    assert counts() == before
    assert (stored(wallet.id), stored(cash.id)) == (wallet_before, cash_before)


def test_postings_in_two_currencies_must_balance_per_currency():
    euros, pounds = funded_wallet(1_000), None
    member = make_member(funds={"GBP": 1_000})
    pounds = ledger.wallet_account(member.id, "GBP")
    before = counts()
    with pytest.raises(LedgerInvariantError, match="do not sum to zero"):
        ledger.post_entry("fx", [(euros, 100), (pounds, -100)])
    with pytest.raises(LedgerInvariantError):
        ledger.transfer("fx", euros, pounds, 100)
    assert counts() == before


def test_posting_to_an_account_that_does_not_exist_raises():
    wallet = funded_wallet(1_000)
    before = counts()
    with pytest.raises(LedgerInvariantError, match="does not exist"):
        ledger.post_entry("bad", [(wallet, 100), (Account(id=10**9), -100)])
    assert counts() == before


def test_a_database_error_while_posting_is_an_integrity_error_and_writes_nothing():
    alice, bob = funded_wallet(1_000), funded_wallet(0)
    before = counts()
    with pytest.raises(IntegrityError):
        ledger.transfer("gift", alice, bob, 100, actor_id=10**9)  # no such member: the foreign key refuses
    assert counts() == before
    assert (stored(alice.id), stored(bob.id)) == ((1_000, 0), (0, 0))
    ledger.transfer("gift", alice, bob, 100)  # the session is usable again
    assert stored(bob.id) == (100, 0)


def _postings(entry_id: int) -> list[tuple[int, int, int]]:
    return [
        (p.account_id, p.amount, p.balance_after)
        for p in db.session.execute(select(Posting).where(Posting.entry_id == entry_id).order_by(Posting.id)).scalars()
    ]


def test_accounts_given_as_objects_or_as_ids_post_alike():
    """Loaded, expired and bare-id accounts post alike, a wallet passed through twice included."""
    alice, bob, cash = funded_wallet(1_000), funded_wallet(0), external()
    cash_before = stored(cash.id)[0]
    # A wallet passed through twice: debited beyond its balance, then credited back (net zero is allowed).
    legs = [(alice, 1_500), (cash, -1_500), (cash, 1_500), (alice, -1_500), (alice, 250), (bob, -250)]
    by_objects = ledger.post_entry("through", legs)
    after_objects = [stored(a.id) for a in (alice, bob, cash)]
    by_ids = ledger.post_entry("through", [(account.id, amount) for account, amount in legs])
    db.session.commit()  # expires the objects: the next one reloads them
    by_expired = ledger.post_entry("through", legs)
    db.session.commit()
    assert after_objects == [(750, 0), (250, 0), (cash_before, 0)]
    assert [stored(a.id) for a in (alice, bob, cash)] == [(250, 0), (750, 0), (cash_before, 0)]
    first, second, third = (_postings(e.id) for e in (by_objects, by_ids, by_expired))
    assert first == [
        (alice.id, 1_500, -500),
        (cash.id, -1_500, cash_before - 1_500),
        (cash.id, 1_500, cash_before),
        (alice.id, -1_500, 1_000),
        (alice.id, 250, 750),
        (bob.id, -250, 250),
    ]
    assert [(a, m) for a, m, _ in second] == [(a, m) for a, m, _ in first]
    assert [b for _, _, b in second] == [-750, cash_before - 1_500, cash_before, 750, 500, 500]
    assert [b for _, _, b in third] == [-1_000, cash_before - 1_500, cash_before, 500, 250, 750]


def test_a_refused_transfer_leaves_the_transaction_usable():
    """The refusal is decided before anything is written: no failed statement poisons the transaction."""
    alice, bob = funded_wallet(500), funded_wallet(0)
    before = counts()
    with transaction():
        with pytest.raises(InsufficientFunds) as caught:
            ledger.transfer("gift", alice, bob, 501)
        assert caught.value.errors == {"amount": ["available balance is 500"]}
        with pytest.raises(LedgerInvariantError):
            ledger.post_entry("bad", [(alice, 1), (bob, -2)])
        ledger.transfer("gift", alice, bob, 500)
    assert (stored(alice.id), stored(bob.id)) == ((0, 0), (500, 0))
    assert (alice.balance, bob.balance) == (0, 500)
    assert counts()[0] == before[0] + 1


def test_an_account_object_for_no_row_is_refused_before_anything_is_written():
    wallet = funded_wallet(1_000)
    ghost = Account(id=10**9, code="ghost:wallet:EUR", currency="EUR", kind="wallet", normal_side="credit")
    before = counts()
    with pytest.raises(LedgerInvariantError, match="does not exist"):
        ledger.transfer("bad", wallet, ghost, 100)
    assert counts() == before
    assert stored(wallet.id) == (1_000, 0)


# ---------------------------------------------------------------- rollback on error


def test_insufficient_funds_rolls_back_the_whole_outer_transaction():
    alice, bob, carol = funded_wallet(1_000), funded_wallet(0), funded_wallet(0)
    before = counts()
    with pytest.raises(InsufficientFunds):
        with transaction():
            ledger.transfer("gift", alice, bob, 600)  # written...
            ledger.place_hold(bob, 100)
            ledger.transfer("gift", bob, carol, 600)  # ...but this fails: 500 available
    assert counts() == before
    assert [stored(a.id) for a in (alice, bob, carol)] == [(1_000, 0), (0, 0), (0, 0)]


def test_unbalanced_entry_rolls_back_the_whole_outer_transaction():
    alice, bob = funded_wallet(1_000), funded_wallet(0)
    before = counts()
    with pytest.raises(LedgerInvariantError):
        with transaction():
            ledger.transfer("gift", alice, bob, 600)
            ledger.post_entry("bad", [(alice, 1), (bob, -2)])
    assert counts() == before
    assert (stored(alice.id), stored(bob.id)) == ((1_000, 0), (0, 0))


def test_any_error_after_posting_rolls_the_posting_back():
    alice, bob = funded_wallet(1_000), funded_wallet(0)
    hold = ledger.place_hold(alice, 300)
    before = counts()
    with pytest.raises(RuntimeError):
        with transaction():
            lost = ledger.transfer("gift", alice, bob, 100)
            ledger.capture_hold(hold.id, 300, bob, kind="pledge")
            raise RuntimeError("the caller failed after the ledger wrote")
    assert counts() == before
    assert (stored(alice.id), stored(bob.id)) == ((1_000, 300), (0, 0))
    assert db.session.get(Hold, hold.id).status == "held"
    # The next entry may reuse the rolled-back entry's id (SQLite does): it must still work.
    entry = ledger.transfer("gift", alice, bob, 100)
    assert entry is not lost
    assert [p.amount for p in entry.postings] == [100, -100]


# ---------------------------------------------------------------- holds


def test_hold_sets_money_aside_and_capture_in_full_moves_it():
    alice, escrow = funded_wallet(1_000), ledger.ensure_account("pool:1:escrow:EUR", "EUR", "escrow")
    hold = ledger.place_hold(alice, 400, reference="pool:1:pledge")
    assert (hold.status, hold.amount, hold.captured, hold.reference) == ("held", 400, 0, "pool:1:pledge")
    assert stored(alice.id) == (1_000, 400)
    assert wallet_of(alice.member_id)["available"] == 600
    captured = ledger.capture_hold(hold.id, 400, escrow, kind="pool_capture", memo="pool 1")
    assert (captured.status, captured.captured) == ("captured", 400)
    assert captured.resolved_at is not None
    assert stored(alice.id) == (600, 0)
    assert stored(escrow.id) == (400, 0)
    entry = db.session.get(JournalEntry, captured.capture_entry_id)
    assert (entry.kind, entry.memo) == ("pool_capture", "pool 1")
    assert [(p.account_id, p.amount) for p in entry.postings] == [(alice.id, 400), (escrow.id, -400)]


def test_capture_in_part_releases_the_rest():
    alice, bob = funded_wallet(1_000), funded_wallet(0)
    hold = ledger.place_hold(alice, 400)
    ledger.capture_hold(hold.id, 150, bob, kind="pledge")
    assert db.session.get(Hold, hold.id).captured == 150
    assert stored(alice.id) == (850, 0)
    assert stored(bob.id) == (150, 0)


def test_release_gives_the_hold_back():
    alice = funded_wallet(1_000)
    before = counts()
    hold = ledger.place_hold(alice, 999)
    released = ledger.release_hold(hold.id)
    assert (released.status, released.captured) == ("released", 0)
    assert released.resolved_at is not None
    assert stored(alice.id) == (1_000, 0)
    assert counts()[:2] == before[:2]  # no journal entry for a hold or a release


@pytest.mark.parametrize("first", ["capture_full", "capture_part", "release"])
@pytest.mark.parametrize("second", ["capture", "release"])
def test_a_hold_resolves_exactly_once(first, second):
    alice, bob = funded_wallet(1_000), funded_wallet(0)
    hold = ledger.place_hold(alice, 400)
    if first == "capture_full":
        ledger.capture_hold(hold.id, 400, bob, kind="pledge")
    elif first == "capture_part":
        ledger.capture_hold(hold.id, 100, bob, kind="pledge")
    else:
        ledger.release_hold(hold.id)
    before, balances = counts(), (stored(alice.id), stored(bob.id))
    with pytest.raises(InvalidState):
        if second == "capture":
            ledger.capture_hold(hold.id, 100, bob, kind="pledge")
        else:
            ledger.release_hold(hold.id)
    assert counts() == before
    assert (stored(alice.id), stored(bob.id)) == balances


@pytest.mark.parametrize("amount", [401, 0, -5])
def test_capture_outside_the_hold_fails_and_leaves_it_held(amount):
    alice, bob = funded_wallet(1_000), funded_wallet(0)
    hold = ledger.place_hold(alice, 400)
    before = counts()
    with pytest.raises(LedgerInvariantError):
        ledger.capture_hold(hold.id, amount, bob, kind="pledge")
    assert counts() == before
    assert db.session.get(Hold, hold.id).status == "held"
    assert stored(alice.id) == (1_000, 400)


def test_hold_beyond_available_is_insufficient_funds():
    alice = funded_wallet(1_000)
    ledger.place_hold(alice, 700)
    before = counts()
    with pytest.raises(InsufficientFunds):
        ledger.place_hold(alice, 301)
    assert counts() == before
    assert stored(alice.id) == (1_000, 700)
    ledger.place_hold(alice, 300)
    assert stored(alice.id) == (1_000, 1_000)


def test_a_hold_is_the_session_s_own_row_and_the_caller_s_account_shows_it():
    alice = funded_wallet(1_000)
    with transaction():
        hold = ledger.place_hold(alice, 250, reference="x" * 100)
        assert (alice.balance, alice.held) == (1_000, 250)  # the caller's object, without a reload
        assert db.session.get(Hold, hold.id) is hold
    row = db.session.execute(
        select(Hold.account_id, Hold.amount, Hold.captured, Hold.status, Hold.reference, Hold.created_at).where(
            Hold.id == hold.id
        )
    ).one()
    assert tuple(row) == (alice.id, 250, 0, "held", "x" * 80, hold.created_at)
    assert hold.account.id == alice.id
    by_id = ledger.place_hold(alice.id, 50)  # an account id does as well as the Account
    assert (by_id.account_id, by_id.amount, by_id.status) == (alice.id, 50, "held")
    assert stored(alice.id) == (1_000, 300)
    with pytest.raises(InsufficientFunds) as refused:
        ledger.place_hold(alice.id, 701)
    assert str(refused.value.errors["amount"][0]) == "available balance is 700"
    assert stored(alice.id) == (1_000, 300)


@pytest.mark.parametrize("amount", [0, -1, 1.5, True])
def test_a_hold_must_be_a_positive_int(amount):
    alice = funded_wallet(1_000)
    with pytest.raises(LedgerInvariantError):
        ledger.place_hold(alice, amount)
    assert stored(alice.id) == (1_000, 0)


def test_unknown_holds_and_entries_are_not_found():
    with pytest.raises(NotFound):
        ledger.release_hold(10**9)
    with pytest.raises(NotFound):
        ledger.capture_hold(10**9, 1, external(), kind="x")
    with pytest.raises(NotFound):
        ledger.reverse_entry(10**9)


# ---------------------------------------------------------------- reversals


def test_reversal_mirrors_the_entry_once():
    alice, bob = funded_wallet(1_000), funded_wallet(0)
    entry = ledger.transfer("gift", alice, bob, 250)
    reversal = ledger.reverse_entry(entry.id, actor_id=alice.member_id)
    assert (reversal.kind, reversal.reverses_id, reversal.memo) == (
        "reversal",
        entry.id,
        f"Reversal of entry {entry.id}",
    )
    assert [(p.account_id, p.amount) for p in reversal.postings] == [(alice.id, -250), (bob.id, 250)]
    assert stored(alice.id) == (1_000, 0)
    assert stored(bob.id) == (0, 0)
    before = counts()
    with pytest.raises(InvalidState, match="already reversed"):
        ledger.reverse_entry(entry.id)
    with pytest.raises(InvalidState, match="cannot itself be reversed"):
        ledger.reverse_entry(reversal.id)
    assert counts() == before


def test_reversal_that_would_overdraw_is_refused():
    alice, bob, carol = funded_wallet(1_000), funded_wallet(0), funded_wallet(0)
    entry = ledger.transfer("gift", alice, bob, 250)
    ledger.transfer("gift", bob, carol, 200)  # bob spent most of it
    before = counts()
    with pytest.raises(InsufficientFunds):
        ledger.reverse_entry(entry.id)
    assert counts() == before
    assert stored(bob.id) == (50, 0)


# ---------------------------------------------------------------- batches


def test_batch_posts_every_entry_in_order_in_one_go():
    alice, bob, cash = funded_wallet(1_000), funded_wallet(0), external()
    cash_before = stored(cash.id)[0]
    ids = post_entries(
        [
            NewEntry("gift", [(alice, 300), (bob, -300)], memo="one"),
            NewEntry("gift", [(bob.id, 250), (alice.id, -250)], memo="two"),  # ids work as well as accounts
            NewEntry("deposit", [(cash, 50), (bob, -50)], actor_id=bob.member_id),
            NewEntry("gift", [(bob, 100), (alice, -100)], memo="spends what the first brought in"),
        ]
    )
    assert len(ids) == 4 and ids == sorted(ids)
    assert stored(alice.id) == (1_050, 0)
    assert stored(bob.id) == (0, 0)
    assert stored(cash.id) == (cash_before + 50, 0)
    assert (alice.balance, bob.balance) == (1_050, 0)  # the caller's objects follow
    entries = [db.session.get(JournalEntry, i) for i in ids]
    assert [e.memo for e in entries] == ["one", "two", "", "spends what the first brought in"]
    assert entries[2].actor_id == bob.member_id
    statement = db.session.execute(
        select(Posting.amount, Posting.balance_after).where(Posting.account_id == bob.id).order_by(Posting.id)
    ).all()
    assert [tuple(r) for r in statement][-4:] == [(-300, 300), (250, 50), (-50, 100), (100, 0)]


def test_batch_honours_idempotency_keys():
    alice, bob = funded_wallet(1_000), funded_wallet(0)
    earlier = ledger.transfer("gift", alice, bob, 10, idempotency_key="k-0")
    ids = post_entries(
        [
            NewEntry("gift", [(alice, 10), (bob, -10)], idempotency_key="k-0"),  # posted before the batch
            NewEntry("gift", [(alice, 20), (bob, -20)], idempotency_key="k-1"),
            NewEntry("gift", [(alice, 20), (bob, -20)], idempotency_key="k-1"),  # twice in the batch
            NewEntry("gift", [(alice, 30), (bob, -30)]),
        ]
    )
    assert ids[0] == earlier.id
    assert ids[1] == ids[2] != ids[3]
    assert stored(bob.id) == (60, 0)
    before = counts()
    assert post_entries([NewEntry("gift", [(alice, 20), (bob, -20)], idempotency_key="k-1")]) == [ids[1]]
    assert counts() == before
    assert post_entries([]) == []


def test_batch_with_an_overdraft_anywhere_writes_nothing():
    alice, bob = funded_wallet(1_000), funded_wallet(0)
    before = counts()
    with pytest.raises(InsufficientFunds) as caught:
        post_entries(
            [
                NewEntry("gift", [(alice, 600), (bob, -600)]),
                NewEntry("gift", [(bob, 600), (alice, -600)]),
                NewEntry("gift", [(alice, 1_001), (bob, -1_001)]),  # 1000 available at this point
            ]
        )
    assert caught.value.errors == {"amount": ["entry 2 of the batch: available balance is 1000"]}
    assert counts() == before
    assert (stored(alice.id), stored(bob.id)) == ((1_000, 0), (0, 0))


def test_batch_with_an_unbalanced_entry_writes_nothing():
    alice, bob = funded_wallet(1_000), funded_wallet(0)
    before = counts()
    with pytest.raises(LedgerInvariantError, match="entry 1 of the batch"):
        post_entries([NewEntry("gift", [(alice, 6), (bob, -6)]), NewEntry("gift", [(alice, 6), (bob, -5)])])
    assert counts() == before
    assert (stored(alice.id), stored(bob.id)) == ((1_000, 0), (0, 0))
