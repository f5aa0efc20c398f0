"""A hypothesis state machine drives the ledger's services against an in-memory model.

Each run starts from fresh members (so earlier runs cannot interfere) and
steps through deposits, withdrawals, transfers, holds (placed, captured in
part or in full, released, resolved again), reversals, repeated idempotency
keys and overdraft attempts, on the real database. After every step the
database must agree with the model, and the ledger must be sound: every
entry balanced, every cached balance the sum of its postings, no wallet's
available balance below zero.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import func, select

from marketplace.accounts.models import Member
from marketplace.clock import now
from marketplace.db import transaction
from marketplace.errors import InsufficientFunds, InvalidState
from marketplace.extensions import db
from marketplace.ledger import services as ledger
from marketplace.ledger.models import Account, Hold, JournalEntry, Posting
from marketplace.ledger.queries import reconcile

_runs = itertools.count(1)
WALLETS = 3
amounts = st.integers(1, 5_000)


def _counts() -> tuple[int, int, int]:
    return tuple(
        db.session.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (JournalEntry, Posting, Hold)
    )


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        run = next(_runs)
        self.run = run
        with transaction():
            members = [
                Member(
                    email=f"ledger-machine-{run}-{i}@example.test",
                    password_hash="!",  # never signs in
                    display_name=f"Machine {run}.{i}",
                    role="member",
                    kyc_status="verified",
                    created_at=now(),
                )
                for i in range(WALLETS)
            ]
            db.session.add_all(members)
            db.session.flush()
            self.wallets = [ledger.wallet_account(m.id, "EUR").id for m in members]
            self.cash = ledger.ensure_account(f"external:machine{run}:EUR", "EUR", "external").id
        self.kind = {account_id: "wallet" for account_id in self.wallets} | {self.cash: "external"}
        self.balance = dict.fromkeys(self.kind, 0)  # in each account's normal direction
        self.held = dict.fromkeys(self.kind, 0)
        self.open_holds: dict[int, tuple[int, int]] = {}  # hold id -> (account id, amount)
        self.resolved_holds: set[int] = set()
        self.entries: dict[int, list[tuple[int, int]]] = {}  # reversible entry id -> signed postings
        self.reversed: set[int] = set()
        self.reversals: set[int] = set()
        self.keys: dict[str, int] = {}  # idempotency key -> entry id
        self.keys_used = itertools.count(1)

    # ------------------------------------------------------------ model helpers

    def available(self, account_id: int) -> int:
        return self.balance[account_id] - self.held[account_id]

    def normal(self, account_id: int, amount: int) -> int:
        return -amount if self.kind[account_id] == "wallet" else amount  # wallets are credit-normal

    def overdraws(self, postings: list[tuple[int, int]]) -> bool:
        net: dict[int, int] = {}
        for account_id, amount in postings:
            net[account_id] = net.get(account_id, 0) + self.normal(account_id, amount)
        return any(delta < 0 and self.kind[a] == "wallet" and self.available(a) + delta < 0 for a, delta in net.items())

    def apply(self, entry_id: int, postings: list[tuple[int, int]], reversible: bool = True) -> None:
        for account_id, amount in postings:
            self.balance[account_id] += self.normal(account_id, amount)
        if reversible:
            self.entries[entry_id] = postings

    def account(self, account_id: int) -> Account:
        return db.session.get(Account, account_id)

    def post(self, kind: str, postings: list[tuple[int, int]], key: str | None = None):
        """post_entry as the model expects it to go: applied, or refused with nothing written."""
        if self.overdraws(postings):
            before = _counts()
            try:
                ledger.post_entry(kind, [(self.account(a), amount) for a, amount in postings], idempotency_key=key)
            except InsufficientFunds:
                pass
            else:
                raise AssertionError(f"overdraft not refused: {postings}")
            assert _counts() == before
            return None
        entry = ledger.post_entry(kind, [(self.account(a), amount) for a, amount in postings], idempotency_key=key)
        self.apply(entry.id, postings)
        if key is not None:
            self.keys[key] = entry.id
        return entry

    # ------------------------------------------------------------ rules

    @rule(w=st.integers(0, WALLETS - 1), amount=amounts, with_key=st.booleans())
    def deposit(self, w, amount, with_key):
        key = f"machine{self.run}:deposit:{next(self.keys_used)}" if with_key else None
        self.post("deposit", [(self.cash, amount), (self.wallets[w], -amount)], key)

    @rule(w=st.integers(0, WALLETS - 1), amount=amounts)
    def withdraw(self, w, amount):
        self.post("withdrawal", [(self.wallets[w], amount), (self.cash, -amount)])

    @rule(src=st.integers(0, WALLETS - 1), step=st.integers(1, WALLETS - 1), amount=amounts)
    def transfer(self, src, step, amount):
        source, destination = self.wallets[src], self.wallets[(src + step) % WALLETS]
        if amount > self.available(source):
            before = _counts()
            try:
                ledger.transfer("gift", self.account(source), self.account(destination), amount)
            except InsufficientFunds:
                pass
            else:
                raise AssertionError("overdraft not refused")
            assert _counts() == before
            return
        entry = ledger.transfer("gift", self.account(source), self.account(destination), amount)
        self.apply(entry.id, [(source, amount), (destination, -amount)])

    @rule(src=st.integers(0, WALLETS - 1), dst=st.integers(0, WALLETS - 1), extra=st.integers(1, 1_000))
    def try_to_overdraw(self, src, dst, extra):
        source = self.wallets[src]
        destination = self.wallets[dst] if src != dst else self.cash
        amount = self.available(source) + extra
        postings = [(source, amount), (destination, -amount)]
        assert self.overdraws(postings)
        self.post("overdraft", postings)

    @rule(w=st.integers(0, WALLETS - 1), amount=amounts)
    def place_hold(self, w, amount):
        wallet = self.wallets[w]
        if amount > self.available(wallet):
            before = _counts()
            try:
                ledger.place_hold(self.account(wallet), amount)
            except InsufficientFunds:
                pass
            else:
                raise AssertionError("hold beyond available not refused")
            assert _counts() == before
            return
        hold = ledger.place_hold(self.account(wallet), amount, reference="machine")
        self.held[wallet] += amount
        self.open_holds[hold.id] = (wallet, amount)

    @precondition(lambda self: self.open_holds)
    @rule(data=st.data(), dst=st.integers(0, WALLETS - 1), full=st.booleans())
    def capture(self, data, dst, full):
        hold_id = data.draw(st.sampled_from(sorted(self.open_holds)), label="hold")
        wallet, held = self.open_holds.pop(hold_id)
        amount = held if full else data.draw(st.integers(1, held), label="captured")
        destination = self.wallets[dst]
        hold = ledger.capture_hold(hold_id, amount, self.account(destination), kind="capture")
        assert (hold.status, hold.captured) == ("captured", amount)
        self.held[wallet] -= held
        self.apply(hold.capture_entry_id, [(wallet, amount), (destination, -amount)])
        self.resolved_holds.add(hold_id)

    @precondition(lambda self: self.open_holds)
    @rule(data=st.data())
    def release(self, data):
        hold_id = data.draw(st.sampled_from(sorted(self.open_holds)), label="hold")
        wallet, held = self.open_holds.pop(hold_id)
        assert ledger.release_hold(hold_id).status == "released"
        self.held[wallet] -= held
        self.resolved_holds.add(hold_id)

    @precondition(lambda self: self.resolved_holds)
    @rule(data=st.data(), capture=st.booleans())
    def resolve_again(self, data, capture):
        hold_id = data.draw(st.sampled_from(sorted(self.resolved_holds)), label="hold")
        before = _counts()
        try:
            if capture:
                ledger.capture_hold(hold_id, 1, self.account(self.wallets[0]), kind="capture")
            else:
                ledger.release_hold(hold_id)
        except InvalidState:
            pass
        else:
            raise AssertionError(f"hold {hold_id} resolved twice")
        assert _counts() == before

    @precondition(lambda self: set(self.entries) - self.reversed)
    @rule(data=st.data())
    def reverse(self, data):
        entry_id = data.draw(st.sampled_from(sorted(set(self.entries) - self.reversed)), label="entry")
        mirror = [(account_id, -amount) for account_id, amount in self.entries[entry_id]]
        if self.overdraws(mirror):
            before = _counts()
            try:
                ledger.reverse_entry(entry_id)
            except InsufficientFunds:
                pass
            else:
                raise AssertionError("reversal that overdraws not refused")
            assert _counts() == before
            return
        reversal = ledger.reverse_entry(entry_id)
        assert reversal.reverses_id == entry_id
        self.apply(reversal.id, mirror, reversible=False)
        self.reversed.add(entry_id)
        self.reversals.add(reversal.id)

    @precondition(lambda self: self.reversed or self.reversals)
    @rule(data=st.data())
    def reverse_again(self, data):
        entry_id = data.draw(st.sampled_from(sorted(self.reversed | self.reversals)), label="entry")
        before = _counts()
        try:
            ledger.reverse_entry(entry_id)
        except InvalidState:
            pass
        else:
            raise AssertionError(f"entry {entry_id} reversed twice")
        assert _counts() == before

    @precondition(lambda self: self.keys)
    @rule(data=st.data(), w=st.integers(0, WALLETS - 1), amount=amounts)
    def repeat_idempotency_key(self, data, w, amount):
        key = data.draw(st.sampled_from(sorted(self.keys)), label="key")
        before = _counts()
        entry = ledger.post_entry(
            "deposit",
            [(self.account(self.cash), amount), (self.account(self.wallets[w]), -amount)],
            idempotency_key=key,
        )
        assert entry.id == self.keys[key]
        assert _counts() == before

    # ------------------------------------------------------------ invariants

    @invariant()
    def database_agrees_with_the_model_and_the_ledger_is_sound(self):
        assert reconcile() == []
        rows = db.session.execute(
            select(Account.id, Account.balance, Account.held).where(Account.id.in_(list(self.kind)))
        ).all()
        assert {r.id: (r.balance, r.held) for r in rows} == {a: (self.balance[a], self.held[a]) for a in self.kind}
        assert all(self.available(w) >= 0 for w in self.wallets)
        open_in_db = db.session.execute(
            select(Hold.id).where(Hold.account_id.in_(self.wallets), Hold.status == "held")
        ).scalars()
        assert set(open_in_db) == set(self.open_holds)


def test_ledger_services_agree_with_the_model():
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
