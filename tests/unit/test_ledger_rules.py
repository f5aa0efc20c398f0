"""ledger/rules.py: what makes a journal entry valid and how it moves balances (pure, no database)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.ledger.rules import (
    Balance,
    Line,
    Overdrawn,
    UnbalancedEntry,
    apply_entry,
    check_balanced,
    normal_delta,
    transfer_lines,
)
from marketplace.money import MAX_AMOUNT


@pytest.fixture(autouse=True)
def _clean_database():
    """Overrides the suite's autouse database fixture: the rules are pure and need no app."""
    yield


# ---------------------------------------------------------------- check_balanced


def test_two_opposite_postings_balance():
    check_balanced([Line("a", "EUR", 500), Line("b", "EUR", -500)])


def test_many_postings_balance_per_currency():
    check_balanced(
        [
            Line("a", "EUR", 1_000),
            Line("b", "EUR", -990),
            Line("fees", "EUR", -10),
            Line("c", "GBP", 7),
            Line("d", "GBP", -7),
        ]
    )


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "at least two"),
        ([Line("a", "EUR", 0)], "at least two"),
        ([Line("a", "EUR", 5)], "at least two"),
        ([Line("a", "EUR", 5), Line("b", "EUR", -4)], "do not sum to zero"),
        ([Line("a", "EUR", 5), Line("b", "GBP", -5)], "do not sum to zero"),  # balanced in total, not per currency
        ([Line("a", "EUR", 5), Line("b", "EUR", -5), Line("c", "EUR", 0)], "may not be zero"),
        ([Line("a", "EUR", 5.0), Line("b", "EUR", -5.0)], "must be an int"),
        ([Line("a", "EUR", Decimal(5)), Line("b", "EUR", Decimal(-5))], "must be an int"),
        ([Line("a", "EUR", True), Line("b", "EUR", -1)], "must be an int"),
        ([Line("a", "EUR", MAX_AMOUNT * 1000 + 1), Line("b", "EUR", -(MAX_AMOUNT * 1000 + 1))], "out of range"),
    ],
)
def test_invalid_entries_are_refused(lines, message):
    with pytest.raises(UnbalancedEntry, match=message):
        check_balanced(lines)


currencies = st.sampled_from(["EUR", "GBP", "USD"])
amounts = st.integers(-(10**12), 10**12).filter(bool)


@st.composite
def balanced_entries(draw) -> list[Line]:
    """Random non-zero postings, then per currency one posting that brings the sum to zero."""
    lines = [Line(f"acct{i}", draw(currencies), draw(amounts)) for i in range(draw(st.integers(1, 8)))]
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.currency] = totals.get(line.currency, 0) + line.amount
    for currency, total in totals.items():
        if total:
            lines.append(Line(f"balance-{currency}", currency, -total))
        else:  # already zero: add a pair so every currency still has two postings and sums to zero
            lines += [Line(f"x-{currency}", currency, 1), Line(f"y-{currency}", currency, -1)]
    return draw(st.permutations(lines))


@given(balanced_entries())
def test_balanced_entries_pass(lines):
    check_balanced(lines)


@given(balanced_entries(), st.data())
def test_any_change_to_one_amount_unbalances(lines, data):
    index = data.draw(st.integers(0, len(lines) - 1))
    delta = data.draw(amounts.filter(lambda d: d != -lines[index].amount))
    changed = list(lines)
    changed[index] = Line(lines[index].account, lines[index].currency, lines[index].amount + delta)
    with pytest.raises(UnbalancedEntry):
        check_balanced(changed)


@given(balanced_entries())
def test_dropping_a_posting_unbalances(lines):
    with pytest.raises(UnbalancedEntry):
        check_balanced(lines[1:])


def test_transfer_lines_balance():
    lines = transfer_lines("dr", "cr", "EUR", 250)
    assert lines == [Line("dr", "EUR", 250), Line("cr", "EUR", -250)]
    check_balanced(lines)


def test_normal_delta():
    assert normal_delta("debit", 10) == 10
    assert normal_delta("debit", -10) == -10
    assert normal_delta("credit", 10) == -10  # a debit lowers a credit-normal balance (a wallet)
    assert normal_delta("credit", -10) == 10


# ---------------------------------------------------------------- apply_entry


def _accounts() -> dict[int, Balance]:
    return {
        1: Balance("external:x:EUR", "EUR", "external", "debit", 10_000, 0),
        2: Balance("member:1:wallet:EUR", "EUR", "wallet", "credit", 1_000, 300),
        3: Balance("member:2:wallet:EUR", "EUR", "wallet", "credit", 0, 0),
        4: Balance("pool:1:escrow:EUR", "EUR", "escrow", "credit", 0, 0),
    }


def test_apply_entry_moves_balances_in_their_normal_direction():
    accounts = _accounts()
    after = apply_entry(accounts, [(2, 700), (3, -700)])  # wallet 2 pays wallet 3 all it has available
    assert after == [300, 700]
    assert (accounts[2].balance, accounts[2].held, accounts[2].available) == (300, 300, 0)
    assert accounts[3].balance == 700
    after = apply_entry(accounts, [(1, 50), (3, -50)])  # a deposit raises both the cash and the wallet
    assert after == [10_050, 750]


def test_apply_entry_refuses_an_overdraft_and_changes_nothing():
    accounts = _accounts()
    with pytest.raises(Overdrawn) as caught:
        apply_entry(accounts, [(2, 701), (3, -701)])  # available is 1000 - 300 held
    assert (caught.value.account_id, caught.value.available) == (2, 700)
    assert accounts == _accounts()


def test_apply_entry_lets_non_wallets_go_negative_and_checks_the_net_change():
    accounts = _accounts()
    apply_entry(accounts, [(4, 5_000), (3, -5_000)])  # escrows are not wallets
    assert accounts[4].balance == -5_000
    # Through wallet 2 and back within one entry: its net change is 0, so no overdraft.
    after = apply_entry(accounts, [(2, 2_000), (3, -2_000), (3, 2_000), (2, -2_000)])
    assert after == [-1_000, 7_000, 5_000, 1_000]
    assert accounts[2].balance == 1_000


@given(st.lists(st.tuples(st.sampled_from([2, 3]), st.integers(1, 2_000)), max_size=30))
def test_wallets_never_go_below_available_zero(moves):
    accounts = _accounts()
    for payer, amount in moves:
        payee = 5 - payer
        before = {k: (v.balance, v.held) for k, v in accounts.items()}
        try:
            after = apply_entry(accounts, [(payer, amount), (payee, -amount)])
        except Overdrawn:
            assert before[payer][0] - before[payer][1] < amount
            assert {k: (v.balance, v.held) for k, v in accounts.items()} == before
        else:
            assert after == [accounts[payer].balance, accounts[payee].balance]
        assert all(a.available >= 0 for a in accounts.values() if a.kind == "wallet")
    assert accounts[2].balance + accounts[3].balance == 1_000
